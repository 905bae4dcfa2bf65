//! The tiny_http loop: a few threads take requests from one server, route them, and add the
//! security headers every response carries.

use super::{App, Reply, route};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use tiny_http::{Header, Response, Server};

pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
frame-ancestors 'self' https://huggingface.co; base-uri 'none'; form-action 'none'";

/// Threads answering requests. More than one, so a client that reads a large page slowly
/// holds only its own thread, never the whole status page.
const HANDLERS: usize = 4;

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

pub fn respond(request: tiny_http::Request, reply: Reply) {
    let mut response = Response::from_data(reply.body).with_status_code(reply.status);
    let mut headers = vec![
        header("Content-Type", reply.content_type),
        header("X-Content-Type-Options", "nosniff"),
        header("Referrer-Policy", "no-referrer"),
        header("Content-Security-Policy", CSP),
        header("Cache-Control", "no-store"),
    ];
    if let Some(allow) = reply.allow {
        headers.push(header("Allow", allow));
    }
    for h in headers.into_iter().flatten() {
        response.add_header(h);
    }
    // A client that went away is not our problem; nothing to do but move on.
    let _ = request.respond(response);
}

fn handle(app: &App, request: tiny_http::Request) {
    let method = request.method().as_str().to_ascii_uppercase();
    let url = request.url().to_string();
    let auth = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_string());
    let reply = catch_unwind(AssertUnwindSafe(|| route(app, &method, &url, auth.as_deref()))).unwrap_or_else(|_| {
        log::error!(
            "a request handler panicked ({method} {})",
            url.split('?').next().unwrap_or("")
        );
        Reply::error(500, "internal error")
    });
    respond(request, reply);
}

/// Serves until the server is unblocked (shutdown). Runs on the calling thread plus helpers.
pub fn serve(server: Arc<Server>, app: Arc<App>) {
    let mut helpers = Vec::new();
    for i in 1..HANDLERS {
        let (server, app) = (Arc::clone(&server), Arc::clone(&app));
        let spawned = std::thread::Builder::new()
            .name(format!("http-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || handler_loop(&server, &app));
        match spawned {
            Ok(h) => helpers.push(h),
            Err(e) => log::warn!("cannot start HTTP handler thread {i}: {e}"),
        }
    }
    handler_loop(&server, &app);
    for h in helpers {
        let _ = h.join();
    }
}

fn handler_loop(server: &Server, app: &App) {
    // recv() returns Err only when the server is unblocked or its socket is gone.
    while let Ok(request) = server.recv() {
        handle(app, request);
    }
    // unblock() wakes a single waiting thread: pass it on so every handler stops.
    server.unblock();
}
