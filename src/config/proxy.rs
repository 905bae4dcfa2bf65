//! Outbound proxies from the environment, the curl way: `HTTPS_PROXY` for https URLs,
//! `HTTP_PROXY` for http URLs, `ALL_PROXY` for either when its own is unset (lowercase names
//! too), and `NO_PROXY` for the hosts that go direct. ureq reads its environment itself, from
//! the process and with one proxy for every scheme; this reads the configuration's `Env` (so
//! tests and `check` see the same thing) and the choice is made per URL. A proxy URL's userinfo
//! is a secret: only `shown` (without it) is ever printed.

use super::Env;
use crate::target_url;

#[derive(Clone)]
pub struct Proxy {
    pub proxy: ureq::Proxy,
    /// `http://proxy:3128`, without credentials.
    pub shown: String,
    /// The variable it came from.
    pub var: &'static str,
}

/// Shows no credentials, unlike a derived one.
impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proxy({} from {})", self.shown, self.var)
    }
}

/// Everything the environment says about proxies.
#[derive(Debug, Clone, Default)]
pub struct Proxies {
    https: Option<Proxy>,
    http: Option<Proxy>,
    no_proxy: Vec<Rule>,
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    All,
    /// A host name and its subdomains (`example.com`, `.example.com`, `*.example.com`), or an
    /// IP address; with a port, only that port.
    Host(String, Option<u16>),
}

/// Reads the first set one of `names`; `Err` names the variable (the value is not shown).
fn read(env: &Env, names: &[&'static str]) -> Result<Option<Proxy>, (String, String)> {
    let Some((var, value)) = names
        .iter()
        .find_map(|n| env.get(*n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v.trim())))
    else {
        return Ok(None);
    };
    let bad = || {
        (
            var.to_string(),
            "expected a proxy URL such as http://proxy.example:3128 (value not shown: it may hold credentials)"
                .to_string(),
        )
    };
    let with_scheme = if value.contains("://") {
        value.to_string()
    } else {
        format!("http://{value}")
    };
    let proxy = ureq::Proxy::new(&with_scheme).map_err(|_| bad())?;
    if !matches!(proxy.protocol(), ureq::ProxyProtocol::Http | ureq::ProxyProtocol::Https) {
        return Err((
            var.to_string(),
            "only http:// and https:// proxies are supported (SOCKS is not built in)".to_string(),
        ));
    }
    target_url::parse(&with_scheme).map_err(|_| bad())?;
    let shown = target_url::redact(&with_scheme, &[]);
    Ok(Some(Proxy { proxy, shown, var }))
}

impl Proxies {
    /// Reads the proxy variables. Errors are (variable, message) pairs.
    pub fn from_env(env: &Env) -> Result<Proxies, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut take = |names: &[&'static str]| read(env, names).map_err(|e| errors.push(e)).ok().flatten();
        let all = take(&["ALL_PROXY", "all_proxy"]);
        let https = take(&["HTTPS_PROXY", "https_proxy"]).or_else(|| all.clone());
        let http = take(&["HTTP_PROXY", "http_proxy"]).or(all);
        let no_proxy = ["NO_PROXY", "no_proxy"]
            .iter()
            .find_map(|n| env.get(*n))
            .map(|v| parse_no_proxy(v))
            .unwrap_or_default();
        if errors.is_empty() {
            Ok(Proxies { https, http, no_proxy })
        } else {
            Err(errors)
        }
    }

    /// The proxy for a request to `url`, or `None` to go direct.
    pub fn for_url(&self, url: &str) -> Option<&Proxy> {
        let parts = target_url::parse(url).ok()?;
        let proxy = if parts.scheme == "https" {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }?;
        let host = parts
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = parts.effective_port();
        let bypass = self.no_proxy.iter().any(|r| match r {
            Rule::All => true,
            Rule::Host(h, p) => {
                p.is_none_or(|p| p == port)
                    && (host == *h || host.strip_suffix(h.as_str()).is_some_and(|s| s.ends_with('.')))
            }
        });
        (!bypass).then_some(proxy)
    }

    /// One line per proxy in use, for `check` and the start-up log (no credentials).
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (scheme, p) in [("https", &self.https), ("http", &self.http)] {
            if let Some(p) = p {
                out.push(format!(
                    "{scheme} requests go through the proxy {} ({})",
                    p.shown, p.var
                ));
            }
        }
        if !out.is_empty() && !self.no_proxy.is_empty() {
            out.push(format!("NO_PROXY: {} rule(s)", self.no_proxy.len()));
        }
        out
    }
}

/// `NO_PROXY`: entries separated by commas or spaces; malformed ones are ignored (as curl does).
fn parse_no_proxy(v: &str) -> Vec<Rule> {
    v.split([',', ' ', '\t', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            if e == "*" {
                return Some(Rule::All);
            }
            let e = e.trim_start_matches('*').trim_start_matches('.').to_ascii_lowercase();
            let (host, port) = if let Some(rest) = e.strip_prefix('[') {
                let (h, after) = rest.split_once(']')?;
                (h.to_string(), after.strip_prefix(':'))
            } else if e.matches(':').count() == 1 {
                let (h, p) = e.split_once(':')?;
                (h.to_string(), Some(p))
            } else {
                (e.clone(), None)
            };
            let port = match port {
                Some(p) => Some(p.parse::<u16>().ok()?),
                None => None,
            };
            (!host.is_empty()).then_some(Rule::Host(host, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn via(p: &Proxies, url: &str) -> Option<String> {
        p.for_url(url).map(|p| p.shown.clone())
    }

    #[test]
    fn scheme_picks_its_variable_and_all_proxy_fills_in() {
        let p = Proxies::from_env(&env(&[
            ("HTTPS_PROXY", "http://s.example:3128"),
            ("ALL_PROXY", "a.example:8080"),
        ]))
        .unwrap();
        assert_eq!(via(&p, "https://x.hf.space/"), Some("http://s.example:3128".into()));
        assert_eq!(via(&p, "http://x.hf.space/"), Some("http://a.example:8080".into()));
        let p = Proxies::from_env(&env(&[("http_proxy", "http://h.example:1")])).unwrap();
        assert_eq!(via(&p, "https://x.hf.space/"), None);
        assert_eq!(via(&p, "http://x.hf.space/"), Some("http://h.example:1".into()));
        assert!(Proxies::from_env(&Env::new()).unwrap().for_url("https://x/").is_none());
    }

    #[test]
    fn no_proxy_matches_hosts_subdomains_ips_and_ports() {
        let p = Proxies::from_env(&env(&[
            ("HTTPS_PROXY", "http://p.example:3128"),
            ("NO_PROXY", "internal.example, .corp.example,127.0.0.1 *.svc:8443,[::1]"),
        ]))
        .unwrap();
        let direct = |u: &str| p.for_url(u).is_none();
        assert!(direct("https://internal.example/"));
        assert!(direct("https://a.internal.example/"));
        assert!(!direct("https://notinternal.example/"));
        assert!(direct("https://corp.example/"));
        assert!(direct("https://x.y.corp.example/"));
        assert!(direct("https://127.0.0.1:9/"));
        assert!(!direct("https://127.0.0.2/"));
        assert!(direct("https://a.svc:8443/"));
        assert!(!direct("https://a.svc/"), "only port 8443");
        assert!(direct("https://[::1]:1/"));
        assert!(!direct("https://x.hf.space/"));
        let all = Proxies::from_env(&env(&[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "*")])).unwrap();
        assert!(all.for_url("https://x.hf.space/").is_none());
    }

    #[test]
    fn credentials_never_show() {
        let p = Proxies::from_env(&env(&[("HTTPS_PROXY", "http://user:hunter2@p.example:3128")])).unwrap();
        let shown = p.describe().join("\n");
        assert!(shown.contains("http://p.example:3128"), "{shown}");
        assert!(!shown.contains("hunter2") && !shown.contains("user"), "{shown}");
        assert_eq!(p.for_url("https://x/").unwrap().proxy.password(), Some("hunter2"));
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn bad_proxies_are_errors_naming_the_variable_not_the_value() {
        let errs = Proxies::from_env(&env(&[
            ("HTTPS_PROXY", "socks5://u:secret@p:1080"),
            ("HTTP_PROXY", "ftp://secret@x"),
        ]))
        .unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].0, "HTTPS_PROXY");
        assert!(errs[0].1.contains("SOCKS"), "{}", errs[0].1);
        assert_eq!(errs[1].0, "HTTP_PROXY");
        assert!(errs.iter().all(|(_, m)| !m.contains("secret")));
    }
}
