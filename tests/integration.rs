//! One integration test binary: the real `master-pinger` against fake targets on 127.0.0.1.

#[path = "common/mod.rs"]
mod common;

mod integration {
    pub mod abuse;
    pub mod alerts;
    pub mod bench;
    pub mod browser;
    pub mod channels;
    pub mod checks;
    pub mod cli;
    pub mod conditions;
    pub mod container;
    pub mod durability;
    pub mod flood;
    pub mod http;
    pub mod maintenance;
    pub mod moments;
    pub mod once;
    pub mod platforms;
    pub mod prometheus;
    pub mod push;
    pub mod reload;
    pub mod remote;
    pub mod scheduled;
    pub mod shard;
    pub mod shutdown;
    pub mod tls;
}
