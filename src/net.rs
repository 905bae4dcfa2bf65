//! The one outbound HTTP setup that checks, alerts and restarts share: ureq's agent settings,
//! TLS trust (bundled roots, `SSL_CERT_FILE`, a worker's `tls.ca_file` or `tls.insecure`) and
//! proxies from the environment. Each worker gets an agent of its own, cheap handles on the
//! shared TLS configs, so its trust settings and proxy are fixed once and its check's handshake
//! can hand back the server's certificate.

use crate::config::proxy::Proxies;
use crate::config::{CaFile, TlsSettings};
use crate::tls::Trust;
use crate::tls::connector::{PeerCapture, TlsConnector};
use std::sync::Arc;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};

/// Redirects followed before a request fails (checks, alerts and restarts alike).
pub const MAX_REDIRECTS: u32 = 5;

pub struct Net {
    trust: Trust,
    proxies: Proxies,
}

/// A worker's agent and, for an https target, where its handshake leaves the leaf certificate.
pub struct CheckAgent {
    pub agent: ureq::Agent,
    pub capture: Option<Arc<PeerCapture>>,
}

impl Net {
    pub fn new(ssl_cert_file: Option<&CaFile>, proxies: Proxies) -> Net {
        Net {
            trust: Trust::new(ssl_cert_file),
            proxies,
        }
    }

    /// The setup a configuration asks for: `SSL_CERT_FILE` and the proxy variables.
    pub fn from_settings(s: &crate::config::Settings) -> Net {
        Net::new(s.ssl_cert_file.as_ref(), s.proxies.clone())
    }

    /// Trusts `SSL_CERT_FILE` as a reload read it; true when its certificates changed, so that
    /// every agent built before must be built again.
    pub fn set_ssl_cert_file(&self, file: Option<&CaFile>) -> bool {
        self.trust.set_ssl_cert_file(file)
    }

    /// For an alert channel or the restarts, which always call one base URL: the default trust,
    /// and the proxy for that URL.
    pub fn agent_for(&self, url: &str) -> ureq::Agent {
        self.build(&TlsSettings::default(), None, self.proxy_for(url))
    }

    /// For one target's checks: its own trust settings, and its proxy fixed from its URL.
    pub fn check_agent(&self, url: &str, tls: &TlsSettings) -> CheckAgent {
        let capture = PeerCapture::for_url(url);
        CheckAgent {
            agent: self.build(tls, capture.clone(), self.proxy_for(url)),
            capture,
        }
    }

    pub fn proxy_for(&self, url: &str) -> Option<ureq::Proxy> {
        self.proxies.for_url(url).map(|p| p.proxy.clone())
    }

    pub fn proxies(&self) -> &Proxies {
        &self.proxies
    }

    fn build(&self, tls: &TlsSettings, capture: Option<Arc<PeerCapture>>, proxy: Option<ureq::Proxy>) -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(MAX_REDIRECTS)
            .user_agent(concat!("master-pinger/", env!("CARGO_PKG_VERSION")))
            // ureq would read the process's proxy variables itself; ours come from `Proxies`.
            .proxy(proxy)
            // Workers ping on their own schedules, minutes apart: pooled idle connections would be
            // stale by the next check and only hold file descriptors and buffers.
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            // ureq's default buffers are 128 KiB each way per connection; a ping sends a few hundred
            // bytes and reads a body in 8 KiB chunks, so a thousand concurrent checks need far less.
            .max_response_header_size(16 * 1024)
            .input_buffer_size(20 * 1024)
            .output_buffer_size(4 * 1024)
            .build();
        let connector =
            ().chain(ConnectProxyConnector::default())
                .chain(TcpConnector::default())
                .chain(TlsConnector {
                    configs: self.trust.configs(tls),
                    capture,
                });
        ureq::Agent::with_parts(config, connector, crate::resolve::CheckResolver)
    }
}
