//! State kept in a remote store: the S3 client against a real S3 implementation (moto, which
//! checks signatures), and the service's remote saver against it and against a fake Hub.

use crate::common::hub::{FakeHub, READ_TOKEN, REGULAR_MAX, WRITE_TOKEN};
use crate::common::s3::{BUCKET, Moto};
use master_pinger::config::proxy::Proxies;
use master_pinger::net::Net;
use master_pinger::persist::remote::hub;
use master_pinger::persist::remote::s3::{Client, Condition, S3Settings};
use master_pinger::persist::remote::sigv4::Credentials;
use master_pinger::persist::remote::{Error, ErrorKind};
use std::time::Duration;

pub fn s3_client(moto: &Moto, secret: &str) -> Client {
    let settings = S3Settings {
        endpoint: Some(moto.endpoint()),
        region: "us-east-1".into(),
        credentials: Some(Credentials {
            access_key_id: moto.access_key_id.clone(),
            secret_access_key: secret.to_string(),
            session_token: None,
        }),
        path_style: None,
    };
    Client::new(&Net::new(None, Proxies::default()), &settings, Duration::from_secs(20)).unwrap()
}

#[test]
fn s3_client_reads_writes_and_detects_a_second_writer() {
    let Some(moto) = Moto::start() else { return };
    let c = s3_client(&moto, &moto.secret_access_key);
    // moto signs the path it decoded, so a key with characters to encode (which AWS takes) would
    // be refused there; the encoding itself is checked against AWS's examples in sigv4.rs.
    let key = "dir/state-1.json";
    assert!(c.get(BUCKET, key).unwrap().is_none(), "no object yet");
    assert_eq!(c.head(BUCKET, key).unwrap(), None);

    let first = c
        .put(BUCKET, key, b"{\"v\":1}", "application/json", &Condition::IfNoneMatch)
        .unwrap();
    assert!(!first.is_empty(), "the store gives an ETag");
    let read = c.get(BUCKET, key).unwrap().expect("the object");
    assert_eq!(read.body, b"{\"v\":1}");
    assert_eq!(read.etag.as_deref(), Some(first.as_str()));
    assert_eq!(c.head(BUCKET, key).unwrap().as_deref(), Some(first.as_str()));

    // A first write where an object exists already: another instance got there first.
    let e = c
        .put(BUCKET, key, b"{}", "application/json", &Condition::IfNoneMatch)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");

    let second = c
        .put(
            BUCKET,
            key,
            b"{\"v\":2}",
            "application/json",
            &Condition::IfMatch(first.clone()),
        )
        .unwrap();
    assert_ne!(second, first);
    // A writer still holding the first ETag is refused: the object moved on.
    let e: Error = c
        .put(
            BUCKET,
            key,
            b"{\"v\":3}",
            "application/json",
            &Condition::IfMatch(first),
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert_eq!(c.get(BUCKET, key).unwrap().unwrap().body, b"{\"v\":2}");
}

#[test]
fn s3_client_names_a_wrong_secret_key_without_showing_it() {
    let Some(moto) = Moto::start() else { return };
    let wrong = "wrongSECRETwrongSECRETwrongSECRET0000000";
    let e = s3_client(&moto, wrong).get(BUCKET, "k").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        e.message
            .contains("AWS_SECRET_ACCESS_KEY does not match AWS_ACCESS_KEY_ID"),
        "{e}"
    );
    assert!(
        !e.message.contains(wrong) && !e.message.contains(&moto.access_key_id),
        "{e}"
    );
    // The right key works on the same server: the signature, not the setup, was refused.
    assert!(
        s3_client(&moto, &moto.secret_access_key)
            .get(BUCKET, "k")
            .unwrap()
            .is_none()
    );
}

fn hub_client(hub: &FakeHub, token: Option<&str>) -> hub::Client {
    hub::Client::new(
        &Net::new(None, Proxies::default()),
        &hub.endpoint(),
        token.map(str::to_string),
        Duration::from_secs(20),
    )
}

fn dataset(id: &str) -> hub::Repo {
    hub::Repo {
        kind: hub::RepoKind::Dataset,
        id: id.to_string(),
    }
}

#[test]
fn hub_client_reads_commits_and_detects_a_moved_parent() {
    let fake = FakeHub::with_repo("datasets/me/state");
    let c = hub_client(&fake, Some(WRITE_TOKEN));
    let repo = dataset("me/state");
    let missing = c.download(&repo, "pinger/state.json").unwrap();
    assert!(missing.body.is_none());
    let head = c.head_commit(&repo).unwrap();

    let files = [hub::CommitFile {
        path: "pinger/state.json",
        content: b"{\"version\":2}",
    }];
    let new = c.commit(&repo, "master-pinger state", Some(&head), &files).unwrap();
    assert_ne!(new, head);
    let read = c.download(&repo, "pinger/state.json").unwrap();
    assert_eq!(read.body.as_deref(), Some(&b"{\"version\":2}"[..]));
    assert_eq!(read.commit.as_deref(), Some(new.as_str()));

    // Committing again on the old parent: someone (here, this client) moved the branch.
    let e = c.commit(&repo, "master-pinger state", Some(&head), &files).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    assert!(e.message.contains("A commit has happened since"), "{e}");
    let commits = fake.repo("datasets/me/state").commits;
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].parent.as_deref(), Some(head.as_str()));
    assert_eq!(fake.problems(), Vec::<String>::new());
    assert!(
        fake.requests()
            .iter()
            .any(|r| r == "POST /api/datasets/me/state/preupload/main")
    );
}

#[test]
fn hub_client_words_each_refusal() {
    let fake = FakeHub::with_repo("datasets/me/state");
    let repo = dataset("me/state");
    let file = [hub::CommitFile {
        path: "s.json",
        content: b"{}",
    }];
    let e = hub_client(&fake, Some("hf_wrong"))
        .download(&repo, "s.json")
        .unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (
            ErrorKind::Auth,
            "HF_TOKEN was refused (invalid or expired) (the Hub said: Invalid credentials in Authorization header)"
        )
    );
    let e = hub_client(&fake, Some(READ_TOKEN))
        .commit(&repo, "s", None, &file)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.message.contains("may not write datasets/me/state"), "{e}");
    let e = hub_client(&fake, Some(WRITE_TOKEN))
        .download(&dataset("me/nothing"), "s.json")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.message.contains("there is no dataset me/nothing"), "{e}");
    fake.state.lock().unwrap().throttle = 1;
    let e = hub_client(&fake, Some(WRITE_TOKEN))
        .commit(&repo, "s", None, &file)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttled(Some(Duration::from_secs(1))), "{e}");
    let big = vec![b'x'; REGULAR_MAX + 1];
    let e = hub_client(&fake, Some(WRITE_TOKEN))
        .commit(
            &repo,
            "s",
            None,
            &[hub::CommitFile {
                path: "big.json",
                content: &big,
            }],
        )
        .unwrap_err();
    assert!(e.message.contains("stored with LFS"), "{e}");
    for secret in [WRITE_TOKEN, READ_TOKEN] {
        assert!(!format!("{e:?}").contains(secret));
    }
    assert_eq!(fake.problems(), Vec::<String>::new());
}
