//! Watches: a chunked response of one JSON event per line,
//! `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}`, until `timeoutSeconds` or
//! the client leaving. A watcher that falls behind the live fan-out (a test writing thousands
//! of objects without yielding) catches up from the store's history; one behind even that gets
//! a 410 `Expired` ERROR event and the end of the watch, and re-lists, as from a real server.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::discovery::ResourceDef;
use super::select::Filter;
use super::server::Shared;
use super::status::ApiError;
use super::store::{Change, ChangeType};
use super::table::{self, Include};
use super::wire::{self, Body, Format, Query};

/// Turns objects into event lines in the negotiated format.
struct Encoder {
    def: &'static ResourceDef,
    format: Format,
    include: Include,
    /// Only the first Table event carries the column definitions.
    columns_sent: bool,
}

impl Encoder {
    fn line(&mut self, kind: &str, object: &Value) -> Bytes {
        let object = match self.format {
            Format::Json => object.clone(),
            Format::Metadata => table::partial(object, "v1"),
            Format::Table(version) => {
                let resource_version = object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default();
                let with_columns = !self.columns_sent;
                self.columns_sent = true;
                table::table(
                    self.def,
                    std::slice::from_ref(object),
                    self.include,
                    version,
                    resource_version,
                    with_columns,
                )
            }
        };
        let mut line = json!({"type": kind, "object": object}).to_string();
        line.push('\n');
        Bytes::from(line)
    }
}

/// The event a change makes for a watch with `filter`: an object that starts (stops) matching
/// is ADDED (DELETED), as the API server's watch cache reports it.
fn event(change: &Change, filter: &Filter) -> Option<&'static str> {
    let matches_now = filter.matches(&change.object);
    let matched_before = change.previous.as_ref().is_some_and(|p| filter.matches(p));
    match (change.kind, matched_before, matches_now) {
        (ChangeType::Added, _, true) => Some("ADDED"),
        (ChangeType::Deleted, _, true) => Some("DELETED"),
        (ChangeType::Modified, true, true) => Some("MODIFIED"),
        (ChangeType::Modified, false, true) => Some("ADDED"),
        (ChangeType::Modified, true, false) => Some("DELETED"),
        _ => None,
    }
}

struct State {
    shared: Arc<Shared>,
    pending: VecDeque<Bytes>,
    live: broadcast::Receiver<Arc<Change>>,
    /// Live changes up to this revision were already sent (or skipped).
    after: u64,
    filter: Filter,
    encoder: Encoder,
    deadline: Option<Instant>,
}

impl State {
    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(line);
            }
            let received = match self.deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.live.recv())
                    .await
                    .ok()?,
                None => self.live.recv().await,
            };
            let change = match received {
                Ok(change) => change,
                Err(RecvError::Lagged(_)) => {
                    self.catch_up();
                    continue;
                }
                Err(RecvError::Closed) => return None,
            };
            if change.revision <= self.after || change.resource != self.encoder.def.name {
                continue;
            }
            self.after = change.revision;
            if let Some(kind) = event(&change, &self.filter) {
                return Some(self.encoder.line(kind, &change.object));
            }
        }
    }

    /// Queues the changes the live fan-out dropped, from the store's history; the receiver then
    /// resumes, its changes up to the replay's revision skipped as already sent.
    fn catch_up(&mut self) {
        match self.shared.store.replay(self.encoder.def.name, self.after) {
            Ok((missed, revision)) => {
                for change in &missed {
                    if let Some(kind) = event(change, &self.filter) {
                        let line = self.encoder.line(kind, &change.object);
                        self.pending.push_back(line);
                    }
                }
                self.after = revision;
            }
            Err(compacted) => {
                self.pending.push_back(expired(self.after, compacted));
                // Nothing after the error: the client re-lists.
                self.live = broadcast::channel(1).1;
            }
        }
    }
}

/// The ERROR event of a watch starting (or falling) before the history kept.
fn expired(after: u64, compacted: u64) -> Bytes {
    let status =
        ApiError::expired(format!("too old resource version: {after} ({compacted})")).status();
    Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": status})))
}

/// Answers a watch request on `def` (already negotiated to `format`).
pub(super) fn respond(
    shared: &Arc<Shared>,
    def: &'static ResourceDef,
    filter: Filter,
    format: Format,
    query: &Query,
) -> Response<Body> {
    let after = match query.get("resourceVersion").unwrap_or_default() {
        "" | "0" => None,
        text => match text.parse::<u64>() {
            Ok(revision) => Some(revision),
            Err(_) => {
                return ApiError::bad_request(format!("invalid resourceVersion {text:?}"))
                    .response();
            }
        },
    };
    let deadline = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    let mut encoder = Encoder {
        def,
        format,
        include: Include::from_query(query),
        columns_sent: false,
    };
    let subscription = match shared.store.subscribe(def.name, after) {
        Ok(subscription) => subscription,
        Err(compacted) => {
            // A real server accepts the watch and reports the expiry as its only event.
            let line = expired(after.unwrap_or_default(), compacted);
            return stream_response(format, wire::full(line));
        }
    };
    let mut pending = VecDeque::new();
    for object in subscription.current.iter().filter(|o| filter.matches(o)) {
        pending.push_back(encoder.line("ADDED", object));
    }
    if after.is_none() && query.flag("sendInitialEvents") {
        // Streaming lists (`kube`'s `streaming_lists()`): a bookmark ends the initial events.
        let bookmark = json!({
            "kind": def.kind,
            "apiVersion": def.api_version(),
            "metadata": {
                "resourceVersion": subscription.revision.to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"},
            },
        });
        pending.push_back(encoder.line("BOOKMARK", &bookmark));
    }
    for change in &subscription.replay {
        if let Some(kind) = event(change, &filter) {
            pending.push_back(encoder.line(kind, &change.object));
        }
    }
    let state = State {
        shared: Arc::clone(shared),
        pending,
        live: subscription.live,
        after: subscription.revision,
        filter,
        encoder,
        deadline,
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        let line = state.next_line().await?;
        Some((Ok::<_, Infallible>(Frame::data(line)), state))
    });
    stream_response(format, StreamBody::new(stream).boxed_unsync())
}

fn stream_response(format: Format, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    if let Ok(value) = HeaderValue::from_str(&format.content_type(false)) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
