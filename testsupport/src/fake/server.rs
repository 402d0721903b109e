//! The network side of the fake: TLS, HTTP/1.1, and turning [`Action`]s into responses.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::behavior::{Action, Reply};
use super::state::{IncomingRequest, State, lock};

type ResponseBody = BoxBody<Bytes, Infallible>;

/// Accepts connections until the task is aborted; aborting also drops every connection.
pub(crate) async fn serve(listener: TcpListener, acceptor: TlsAcceptor, state: Arc<Mutex<State>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    connections.spawn(connection(tcp, acceptor.clone(), state.clone()));
                }
                Err(error) => {
                    // Typically out of file descriptors; back off instead of spinning.
                    tracing::warn!(%error, "fake TrackVia: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(tcp: TcpStream, acceptor: TlsAcceptor, state: Arc<Mutex<State>>) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        // Handshake failures are expected in tests of clients that do not trust the CA.
        Ok(Err(error)) => {
            tracing::debug!(%error, "fake TrackVia: TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let close = Arc::new(Notify::new());
    let service = {
        let close = close.clone();
        service_fn(move |req| respond(req, state.clone(), close.clone()))
    };
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::select! {
        result = conn => {
            if let Err(error) = result {
                tracing::debug!(%error, "fake TrackVia: connection ended with an error");
            }
        }
        // Dropping the connection here closes the socket without a response or TLS
        // close_notify: the client sees the connection die mid-request.
        () = close.notified() => {}
    }
}

async fn respond(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    close: Arc<Notify>,
) -> Result<Response<ResponseBody>, Infallible> {
    let incoming = describe(&req);
    let action = lock(&state).handle(incoming);
    match action {
        Action::Reply(reply) => Ok(build(reply)),
        Action::ReplyAfter(delay, reply) => {
            tokio::time::sleep(delay).await;
            Ok(build(reply))
        }
        Action::Close => {
            close.notify_one();
            std::future::pending().await
        }
        Action::Filler { bytes } => Ok(chunked(Generated::filler(bytes).boxed())),
        Action::Views { count } => Ok(chunked(Generated::views(count).boxed())),
        Action::NotJson { bytes } => Ok(chunked(Generated::not_json(bytes).boxed())),
    }
}

/// A 200 `application/json` answer with a body of unknown length.
fn chunked(body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    response
}

/// The most one chunk holds.
const CHUNK: usize = 64 * 1024;

/// A body produced chunk by chunk as it is sent, of unknown length up front (so it goes out
/// with chunked transfer encoding), so that a large answer costs the fake no memory.
struct Generated {
    chunks: Box<dyn Iterator<Item = Bytes> + Send + Sync>,
}

impl Generated {
    /// `[{view 0},{view 1},...]`, a few views per chunk.
    fn views(count: usize) -> Generated {
        const PER_CHUNK: usize = 500;
        let mut next = 0;
        let mut closed = false;
        let chunks = std::iter::from_fn(move || {
            if closed {
                return None;
            }
            let end = (next + PER_CHUNK).min(count);
            let mut text = String::with_capacity((end - next) * 110 + 2);
            for i in next..end {
                text.push(if i == 0 { '[' } else { ',' });
                text.push_str(&format!(
                    r#"{{"id":{i},"name":"View {i:06} of the records table","applicationName":"Operations","default":false}}"#
                ));
            }
            if end == count {
                text.push_str(if count == 0 { "[]" } else { "]" });
                closed = true;
            }
            next = end;
            Some(Bytes::from(text))
        });
        Generated {
            chunks: Box::new(chunks),
        }
    }

    /// Exactly `total` bytes, `[`, spaces, `]` (valid JSON).
    fn filler(total: usize) -> Generated {
        Generated::sized(total, b' ', b"[", b"]")
    }

    /// `<html>` and then text, `bytes` long.
    fn not_json(bytes: usize) -> Generated {
        Generated::sized(bytes, b'x', b"<html><body>Sign in to continue", b"")
    }

    /// Exactly `total` bytes of `fill`, the first ones replaced by `head` and, when there is
    /// room for both, the last ones by `tail`.
    fn sized(total: usize, fill: u8, head: &'static [u8], tail: &'static [u8]) -> Generated {
        let mut sent = 0;
        let chunks = std::iter::from_fn(move || {
            let len = (total - sent).min(CHUNK);
            if len == 0 {
                return None;
            }
            let mut chunk = vec![fill; len];
            if sent == 0 {
                let n = head.len().min(len);
                chunk[..n].copy_from_slice(&head[..n]);
            }
            sent += len;
            if sent == total && total >= head.len() + tail.len() && tail.len() <= len {
                chunk[len - tail.len()..].copy_from_slice(tail);
            }
            Some(Bytes::from(chunk))
        });
        Generated {
            chunks: Box::new(chunks),
        }
    }
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.chunks.next().map(|c| Ok(Frame::data(c))))
    }
}

fn describe(req: &Request<Incoming>) -> IncomingRequest {
    let query = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    IncomingRequest {
        method: req.method().as_str().to_string(),
        path: req.uri().path().to_string(),
        query,
        headers,
    }
}

fn build(reply: Reply) -> Response<ResponseBody> {
    let mut response = Response::new(
        http_body_util::Full::new(reply.body)
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            tracing::warn!(header = %name, "fake TrackVia: skipping an invalid header");
            continue;
        };
        response.headers_mut().append(name, value);
    }
    response
}
