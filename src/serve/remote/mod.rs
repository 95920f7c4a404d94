//! Prometheus's remote protocols as sonde serves them: the remote-write
//! receiver (`POST /api/v1/write`, [`write`]) that ingests what a Prometheus
//! sends, and remote read (`POST /api/v1/read`, [`read`]) that answers a
//! Prometheus's queries from the store. The wire messages are
//! [`crate::prompb`]; remote write out is [`crate::ship`].
//!
//! Every request body is a snappy block-compressed protobuf. Decoding is
//! bounded before any allocation grows with the input: the compressed body
//! by the route's body limit, the decompressed size by the length snappy
//! declares up front, so a hostile body costs at most those bytes.

pub mod read;
pub mod write;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::serve::AppState;

/// Largest compressed request body accepted; larger ones get 413.
pub const MAX_COMPRESSED_BODY: usize = 32 << 20;
/// Largest decompressed protobuf accepted; larger ones get 413. Prometheus
/// sends a few hundred kilobytes per request with its default queue config.
pub const MAX_DECODED_BODY: usize = 64 << 20;

/// The remote endpoints, each body limited to [`MAX_COMPRESSED_BODY`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/write", post(write::receive))
        .route("/api/v1/read", post(read::read))
        .layer(DefaultBodyLimit::max(MAX_COMPRESSED_BODY))
}

/// Why a remote request was refused: the HTTP status and a sentence for the
/// sender's log.
#[derive(Debug)]
pub struct RemoteError {
    pub status: StatusCode,
    pub message: String,
}

impl RemoteError {
    pub fn bad_request(message: impl Into<String>) -> RemoteError {
        RemoteError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn new(status: StatusCode, message: impl Into<String>) -> RemoteError {
        RemoteError {
            status,
            message: message.into(),
        }
    }

    pub fn internal(err: &anyhow::Error) -> RemoteError {
        RemoteError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{err:#}"))
    }
}

impl IntoResponse for RemoteError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response()
    }
}

/// Decodes a snappy-compressed protobuf request body after checking the
/// headers a Prometheus sends: `Content-Type: application/x-protobuf`
/// (optionally with `proto=<message>`) and `Content-Encoding: snappy`.
/// Missing headers are accepted, since some senders omit them; wrong ones
/// get 415.
pub fn decode_request<M: prost::Message + Default>(
    headers: &HeaderMap,
    body: &[u8],
    message: &str,
) -> Result<M, RemoteError> {
    check_content_type(headers, message)?;
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        if !encoding.as_bytes().eq_ignore_ascii_case(b"snappy") {
            return Err(RemoteError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported Content-Encoding {encoding:?}: the body must be snappy block-compressed"
                ),
            ));
        }
    }
    let decoded = decompress(body)?;
    M::decode(decoded.as_slice())
        .map_err(|err| RemoteError::bad_request(format!("cannot decode the {message}: {err}")))
}

fn check_content_type(headers: &HeaderMap, message: &str) -> Result<(), RemoteError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let mut parts = text.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or("");
    let proto = parts.find_map(|p| p.strip_prefix("proto="));
    let media_ok = media_type.eq_ignore_ascii_case("application/x-protobuf");
    if media_ok && proto.is_none_or(|p| p == message) {
        return Ok(());
    }
    Err(RemoteError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "unsupported Content-Type {text:?}: expected \"application/x-protobuf\" holding a {message}"
        ),
    ))
}

/// Snappy block format, refusing a body whose declared size is over
/// [`MAX_DECODED_BODY`] before allocating for it.
fn decompress(body: &[u8]) -> Result<Vec<u8>, RemoteError> {
    let declared = snap::raw::decompress_len(body).map_err(|err| {
        RemoteError::bad_request(format!("the body is not snappy block-compressed: {err}"))
    })?;
    if declared > MAX_DECODED_BODY {
        return Err(RemoteError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body decompresses to {declared} bytes, over the limit of {MAX_DECODED_BODY}: send smaller batches"
            ),
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|err| {
            RemoteError::bad_request(format!("the body is not snappy block-compressed: {err}"))
        })
}
