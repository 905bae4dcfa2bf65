//! Each alert provider's settings as the configuration reads them. The providers in `alert/`
//! build their requests from these; they live here so that the configuration needs nothing from
//! the layers above it.

pub mod webhook {
    pub const PLACEHOLDERS: [&str; 6] = ["worker", "url", "state", "error", "at", "message"];

    /// Used when the channel gives no `body`.
    pub const DEFAULT_BODY: &str = r#"{"worker": "{{worker}}", "url": "{{url}}", "state": "{{state}}", "error": "{{error}}", "at": "{{at}}", "message": "{{message}}"}"#;

    #[derive(Clone, PartialEq)]
    pub struct Settings {
        /// Secret (webhook URLs carry their credentials).
        pub url: String,
        pub method: &'static str,
        /// Values are secrets. Content-Type defaults to `application/json`.
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    /// The placeholders in `template` that are not among [`PLACEHOLDERS`] (a config error).
    pub fn unknown_placeholders(template: &str) -> Vec<String> {
        let mut unknown = Vec::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else { break };
            let name = after[..end].trim();
            if !PLACEHOLDERS.contains(&name) {
                unknown.push(name.to_string());
            }
            rest = &after[end + 2..];
        }
        unknown
    }
}

pub mod telegram {
    pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

    #[derive(Clone, PartialEq)]
    pub struct Settings {
        /// Secret: whoever holds it speaks as the bot.
        pub bot_token: String,
        /// A numeric chat id (`-1001234567890`) or a channel's `@username`.
        pub chat_id: String,
        pub api_url: String,
    }
}

pub mod ntfy {
    #[derive(Clone, PartialEq)]
    pub struct Settings {
        /// The topic URL. Secret: on a public server the topic name is the only password.
        pub url: String,
        /// An access token (`tk_...`), for protected topics. Secret.
        pub token: Option<String>,
    }
}

pub mod gotify {
    #[derive(Clone, PartialEq)]
    pub struct Settings {
        /// The server's base URL (`https://push.example.com`).
        pub url: String,
        /// The application token. Secret.
        pub token: String,
    }
}

pub mod pushover {
    pub const DEFAULT_API_URL: &str = "https://api.pushover.net";

    #[derive(Clone, PartialEq)]
    pub struct Settings {
        /// The user or group key. Secret.
        pub user_key: String,
        /// The application's API token. Secret.
        pub app_token: String,
        pub api_url: String,
    }
}
