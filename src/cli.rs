//! Command-line arguments: which command to run and the flags that feed the configuration.

use crate::config::Flags;
use std::path::PathBuf;

pub const USAGE: &str = "\
master-pinger: keeps a fleet of sleepy free-tier web apps awake and shows how each is doing.

USAGE:
    master-pinger [--config PATH] [--listen ADDR]   run the service (the default)
    master-pinger check [--config PATH]             validate the configuration, print the schedule, exit
    master-pinger healthcheck [--url URL]           GET http://127.0.0.1:$PORT/health; exit 0 if alive, 1 if not
    master-pinger notify-test [--config PATH]       send one test message through every alert channel
    master-pinger once [--config PATH] [--json] [--state-file PATH] [--publish DIR|URL]
                                                    check every worker once (retries included), record,
                                                    alert on transitions, publish the page, exit
    master-pinger --help | --version

OPTIONS:
    --config PATH   JSON configuration file (else $PINGER_CONFIG, else ./pinger.json if present)
    --listen ADDR   address to listen on, e.g. 0.0.0.0:7860 (else 0.0.0.0:$PORT, else the file's \"listen\")
    --shard I/N     for the service, check and once: only shard I of N shards of the workers, those
                    whose name hashes to I-1 modulo N (else $PINGER_SHARD, else all); the self-ping is kept
    --url URL       for healthcheck: the URL to GET (default http://127.0.0.1:$PORT/health)
    --json          for once: print the /status document instead of one line per worker
    --state-file PATH
                    for once: the state kept across runs (else $PINGER_STATE_FILE, else the file's
                    \"state_file\"); with it, history and uptime accumulate and alerts follow transitions
    --publish DIR|hf://spaces/OWNER/NAME|s3://BUCKET/PREFIX
                    for once: write index.html, status.json and badge/NAME.svg there after the run

ENVIRONMENT:
    PORT, PINGER_CONFIG, PINGER_WORKERS, PINGER_SELF_URL, PINGER_STATE_FILE, PINGER_STATE_URL,
    PINGER_ADMIN_TOKEN, PINGER_WEBHOOK_URL, PINGER_SHARD, HF_TOKEN, HF_ENDPOINT, AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL, PINGER_S3_PATH_STYLE,
    SPACE_HOST, RENDER_EXTERNAL_URL, RUST_LOG

EXIT STATUS:
    0 success, 1 runtime failure (port in use, ...), 2 bad usage or bad configuration;
    once: 0 every worker up, 1 any worker down, 2 bad usage or bad configuration
";

/// What `once` was asked for besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct OnceOptions {
    /// Print the `/status` document instead of one line per worker.
    pub json: bool,
    pub publish: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Command {
    Run(Flags),
    Check(Flags),
    NotifyTest(Flags),
    Healthcheck { url: Option<String> },
    Once { flags: Flags, options: OnceOptions },
    Help,
    Version,
}

/// Parses the arguments after the program name. `Err` is a usage message (exit 2).
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut iter = args.iter().peekable();
    let sub = match iter.peek().map(|s| s.as_str()) {
        Some("check") | Some("healthcheck") | Some("notify-test") | Some("once") | Some("run") => {
            iter.next().map(|s| s.as_str())
        }
        _ => None,
    };
    let mut flags = Flags::default();
    let mut url = None;
    let mut options = OnceOptions::default();
    while let Some(arg) = iter.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| iter.next().cloned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} needs a value ({what})"))
        };
        match (name, sub) {
            ("-h" | "--help", _) => return Ok(Command::Help),
            ("-V" | "--version", _) => return Ok(Command::Version),
            ("--config", None | Some("run") | Some("check") | Some("notify-test") | Some("once")) => {
                flags.config = Some(PathBuf::from(value("a file path")?))
            }
            ("--listen", None | Some("run")) => flags.listen = Some(value("an address such as 0.0.0.0:7860")?),
            ("--shard", None | Some("run") | Some("check") | Some("once")) => {
                flags.shard = Some(value("I/N, such as 2/3")?)
            }
            ("--url", Some("healthcheck")) => url = Some(value("a URL")?),
            ("--json", Some("once")) if inline.is_none() => options.json = true,
            ("--state-file", Some("once")) => flags.state_file = Some(PathBuf::from(value("a file path")?)),
            ("--publish", Some("once")) => {
                options.publish = Some(value("a folder, hf://spaces/OWNER/NAME or s3://BUCKET/PREFIX")?)
            }
            (other, _) if other.starts_with('-') => {
                return Err(format!("unknown option {other:?} for {}", sub.unwrap_or("the service")));
            }
            (other, _) => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(match sub {
        Some("check") => Command::Check(flags),
        Some("notify-test") => Command::NotifyTest(flags),
        Some("healthcheck") => Command::Healthcheck { url },
        Some("once") => Command::Once { flags, options },
        _ => Command::Run(flags),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_and_flags() {
        assert!(matches!(parse(&args(&[])), Ok(Command::Run(_))));
        match parse(&args(&["--config", "a.json", "--listen=127.0.0.1:0"])) {
            Ok(Command::Run(f)) => {
                assert_eq!(f.config, Some(PathBuf::from("a.json")));
                assert_eq!(f.listen.as_deref(), Some("127.0.0.1:0"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&args(&["check", "--config", "x"])),
            Ok(Command::Check(_))
        ));
        match parse(&args(&["check", "--shard", "2/3"])) {
            Ok(Command::Check(f)) => assert_eq!(f.shard.as_deref(), Some("2/3")),
            other => panic!("{other:?}"),
        }
        match parse(&args(&["--shard=1/2"])) {
            Ok(Command::Run(f)) => assert_eq!(f.shard.as_deref(), Some("1/2")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&args(&["healthcheck", "--url", "http://x"])),
            Ok(Command::Healthcheck { url: Some(_) })
        ));
        assert!(matches!(
            parse(&args(&["once", "--json", "--config", "x"])),
            Ok(Command::Once { options, .. }) if options.json
        ));
        assert!(matches!(parse(&args(&["once"])), Ok(Command::Once { options, .. }) if !options.json));
        match parse(&args(&["once", "--state-file", "s.json", "--publish=public"])) {
            Ok(Command::Once { flags, options }) => {
                assert_eq!(flags.state_file, Some(PathBuf::from("s.json")));
                assert_eq!(options.publish.as_deref(), Some("public"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&args(&["--state-file", "s.json"])).is_err(), "for once only");
        assert!(matches!(parse(&args(&["--version"])), Ok(Command::Version)));
        assert!(matches!(parse(&args(&["check", "--help"])), Ok(Command::Help)));
        assert!(matches!(
            parse(&args(&["notify-test", "--config", "x"])),
            Ok(Command::NotifyTest(f)) if f.config.is_some()
        ));
        assert!(parse(&args(&["notify-test", "--listen", "x"])).is_err());
    }

    #[test]
    fn usage_errors_name_the_problem() {
        assert!(
            parse(&args(&["--config"]))
                .unwrap_err()
                .contains("--config needs a value")
        );
        assert!(
            parse(&args(&["--bogus"]))
                .unwrap_err()
                .contains("unknown option \"--bogus\"")
        );
        assert!(
            parse(&args(&["check", "--listen", "x"]))
                .unwrap_err()
                .contains("for check")
        );
        assert!(parse(&args(&["stray"])).unwrap_err().contains("unexpected argument"));
        assert!(parse(&args(&["--json"])).unwrap_err().contains("for the service"));
        assert!(
            parse(&args(&["once", "--listen", "x"]))
                .unwrap_err()
                .contains("for once")
        );
        assert!(
            parse(&args(&["--shard"]))
                .unwrap_err()
                .contains("--shard needs a value (I/N, such as 2/3)")
        );
        assert!(
            parse(&args(&["healthcheck", "--shard", "1/2"]))
                .unwrap_err()
                .contains("unknown option \"--shard\" for healthcheck")
        );
    }
}
