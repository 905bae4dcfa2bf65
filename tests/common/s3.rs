//! A real S3 implementation on 127.0.0.1 for the remote-state tests: moto's server (PyPI
//! `moto[server]`, installed by .ci/run). moto checks SigV4 signatures only once its first
//! `INITIAL_NO_AUTH_ACTION_COUNT` actions are done, so the server is started with that count
//! equal to the setup's requests (an IAM user, its key, a policy, the bucket): from then on
//! every request must be signed with that user's real secret key, as on AWS.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const BUCKET: &str = "pinger-state";
/// The unauthenticated setup requests `Moto::start` makes.
const SETUP_ACTIONS: usize = 4;

pub struct Moto {
    child: Child,
    pub port: u16,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Moto {
    /// A fresh server with one user allowed everything on `BUCKET`; `None` (after `skip`, a
    /// failure under CI=true) when moto is not installed.
    pub fn start() -> Option<Moto> {
        Moto::start_on(free_port())
    }

    /// `start` on a given port.
    pub fn start_on(port: u16) -> Option<Moto> {
        Moto::launch(port, true)
    }

    /// A server that checks no signature (any key works), with `BUCKET`: a store that was down
    /// and comes back on `port`, for a pinger started before it with keys of its own.
    pub fn start_open_on(port: u16) -> Option<Moto> {
        Moto::launch(port, false)
    }

    fn launch(port: u16, auth: bool) -> Option<Moto> {
        let python = python();
        let installed = Command::new(&python)
            .args(["-c", "import moto.server, flask, werkzeug"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            super::skip("moto's S3 server is not installed (pip install 'moto[server]')");
            return None;
        }
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .env(
                "INITIAL_NO_AUTH_ACTION_COUNT",
                if auth {
                    SETUP_ACTIONS.to_string()
                } else {
                    "inf".to_string()
                },
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let mut moto = Moto {
            child,
            port,
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        moto.wait_ready();
        if auth {
            moto.setup();
        } else {
            moto.access_key_id = "AKIAOPENOPENOPENOPEN".into();
            moto.secret_access_key = "open-secret".into();
            moto.create_bucket();
        }
        Some(moto)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The variables that point the pinger at this server with the right key.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }

    /// Stops the server (the store goes down); `restart` brings it back, empty.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn wait_ready(&self) {
        let end = Instant::now() + Duration::from_secs(30);
        // moto answers the unauthenticated "moto-api" without counting it as an action.
        while super::try_request("GET", &format!("{}/moto-api/", self.endpoint()), &[])
            .0
            .is_none()
        {
            assert!(Instant::now() < end, "moto did not start on port {}", self.port);
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// An IAM user with an access key, allowed s3:* (the unauthenticated actions), and the bucket.
    fn setup(&mut self) {
        let created = self.iam("CreateUser", &[("UserName", "pinger")]);
        assert!(created.contains("<UserName>pinger</UserName>"), "{created}");
        let key = self.iam("CreateAccessKey", &[("UserName", "pinger")]);
        self.access_key_id = xml(&key, "AccessKeyId");
        self.secret_access_key = xml(&key, "SecretAccessKey");
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
        self.iam(
            "PutUserPolicy",
            &[
                ("UserName", "pinger"),
                ("PolicyName", "all-s3"),
                ("PolicyDocument", policy),
            ],
        );
        self.create_bucket();
    }

    fn create_bucket(&self) {
        let (status, _, body) = super::request_with(
            "PUT",
            &format!("{}/{BUCKET}", self.endpoint()),
            &[("Authorization", &unsigned("s3"))],
        );
        assert_eq!(status, 200, "create bucket: {}", String::from_utf8_lossy(&body));
    }

    fn iam(&self, action: &str, params: &[(&str, &str)]) -> String {
        let mut form = format!("Action={action}&Version=2010-05-08");
        for (k, v) in params {
            form.push_str(&format!("&{k}={}", form_encode(v)));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .new_agent();
        let mut resp = agent
            .post(&self.endpoint())
            .header("Authorization", unsigned("iam"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form.as_bytes())
            .expect("IAM request to moto");
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(resp.status().as_u16(), 200, "{action}: {body}");
        body
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An Authorization header moto routes by (the service in its scope) but does not check yet.
fn unsigned(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    )
}

fn xml(body: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = body.find(&open).unwrap_or_else(|| panic!("no {name} in {body}")) + open.len();
    let end = start + body[start..].find(&format!("</{name}>")).unwrap();
    body[start..end].to_string()
}

fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The Python that has moto: .ci/run's virtual environment when there is one.
fn python() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/moto/bin/python3");
    if venv.exists() { venv } else { "python3".into() }
}

/// Forwards every connection to 127.0.0.1:`port` on to 127.0.0.1:`to`, from now on, each after
/// `delay`: a store that comes back at an address where nothing answered, already holding its
/// objects, or a slow one.
pub fn forward(port: u16, to: u16, delay: Duration) {
    forward_when(port, to, move || thread::sleep(delay));
}

/// `forward`, each connection held until `ready` returns (a store that answers when the test
/// says so).
pub fn forward_when(port: u16, to: u16, ready: impl Fn() + Send + 'static) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the forwarder");
    thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            ready();
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            for (mut from, mut into) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
