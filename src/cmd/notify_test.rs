//! `notify-test`: one test message through every configured channel.

use super::{EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::{alert, config, net};

/// Sends the test message through every channel at once, prints one line per channel in
/// configuration order (`ok`, or why not) and says whether all were delivered.
pub fn run(channels: &[config::Channel], net: &net::Net) -> u8 {
    if channels.is_empty() {
        eprintln!("error: no alert channel is configured (set \"alerts\" in the configuration or PINGER_WEBHOOK_URL)");
        return EXIT_USAGE;
    }
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = channels
            .iter()
            .map(|ch| s.spawn(|| alert::test_channel(ch, &net.agent_for(alert::base_url(&ch.kind)))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("internal error".to_string())))
            .collect()
    });
    for (ch, result) in channels.iter().zip(&results) {
        match result {
            Ok(()) => println!("{}: ok", ch.name),
            Err(why) => println!("{}: failed: {why}", ch.name),
        }
    }
    if results.iter().all(Result::is_ok) {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}
