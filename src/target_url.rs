//! Target URLs: the small parse that validation needs (scheme, host, port) and the redacted form
//! that is the only one ever shown (logs, page, JSON, metrics, alerts).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub scheme: String,
    pub host: String,
    pub port: Option<u16>,
}

impl Parts {
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }

    pub fn is_loopback(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        h.eq_ignore_ascii_case("localhost")
            || h.to_ascii_lowercase().ends_with(".localhost")
            || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// Splits `scheme://[userinfo@]host[:port][/path][?query][#fragment]`.
pub fn parse(url: &str) -> Result<Parts, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("expected an http:// or https:// URL, got {url:?}"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("expected an http or https URL, got scheme {scheme:?}"));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6_end) = hostport.strip_prefix('[').and_then(|h| h.find(']')) {
        let host = &hostport[..v6_end + 2];
        let after = &hostport[v6_end + 2..];
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("expected a URL with a host, got {url:?}"));
    }
    if host.contains(|c: char| c.is_whitespace() || c == '%') {
        return Err(format!("the host {host:?} is not valid"));
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("the port {p:?} is not a number from 1 to 65535"))?,
        ),
    };
    Ok(Parts {
        scheme,
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// The URL without userinfo or fragment, every query value replaced by `REDACTED`, and any
/// secret substring (a value that came from `${VAR}`) replaced by `REDACTED` as well.
pub fn redact(url: &str, secrets: &[String]) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split('#').next().unwrap_or("");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut out = String::with_capacity(url.len());
    if !scheme.is_empty() {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(hostport);
    out.push_str(path);
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) => format!("{k}=REDACTED"),
                None => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "REDACTED");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_port() {
        let p = parse("https://your-space.hf.space/health").unwrap();
        assert_eq!(
            (p.scheme.as_str(), p.host.as_str(), p.port),
            ("https", "your-space.hf.space", None)
        );
        assert_eq!(p.effective_port(), 443);
        let p = parse("http://user:pw@127.0.0.1:8080?x=1").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", Some(8080)));
        assert!(p.is_loopback());
        let p = parse("http://[::1]:9/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("[::1]", Some(9)));
        assert!(p.is_loopback());
        assert!(parse("HTTP://Example.COM").unwrap().host == "example.com");
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(parse("ftp://x").unwrap_err().contains("http or https"));
        assert!(parse("example.com").unwrap_err().contains("http://"));
        assert!(parse("http:///path").unwrap_err().contains("host"));
        assert!(parse("http://x:99999/").unwrap_err().contains("port"));
        assert!(parse("http://x:0/").is_err());
    }

    #[test]
    fn redacts_userinfo_query_values_and_secrets() {
        assert_eq!(
            redact("https://bob:hunter2@a.hf.space/p?token=abc&x&y=2#frag", &[]),
            "https://a.hf.space/p?token=REDACTED&x&y=REDACTED"
        );
        assert_eq!(redact("http://h/ok", &[]), "http://h/ok");
        assert_eq!(
            redact("http://h/s3cr3t/path", &["s3cr3t".to_string()]),
            "http://h/REDACTED/path"
        );
        assert_eq!(redact("http://h?a=b=c", &[]), "http://h?a=REDACTED");
    }
}
