//! Remote read: `POST /api/v1/read` answers a Prometheus `ReadRequest` from
//! the store, in the first response type the client accepts:
//!
//! - `SAMPLES`: one snappy-compressed `ReadResponse`
//!   (`Content-Type: application/x-protobuf`, `Content-Encoding: snappy`).
//! - `STREAMED_XOR_CHUNKS`: `ChunkedReadResponse` frames holding the XOR
//!   chunks exactly as stored (`Content-Type: application/x-streamed-protobuf;
//!   proto=prometheus.ChunkedReadResponse`, not compressed), each frame
//!   `uvarint(length) ‖ CRC32C(message), big endian ‖ message`. Chunks are
//!   whole: the first and last of a series may reach outside the query's
//!   range, as Prometheus's own are.
//!
//! Every request is bounded by [`MAX_SAMPLES`] in total, so one request
//! cannot make sonde hold its whole database in memory.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;

use super::{decode_request, RemoteError};
use crate::model::{Labels, MatchOp, Matcher};
use crate::prompb::{self, compress, ReadRequest, ResponseType};
use crate::serve::AppState;
use crate::store::{xor, SeriesChunks, SeriesSamples};

/// Most samples one read request may return, over all its queries.
pub const MAX_SAMPLES: usize = 10_000_000;
/// A streamed frame is closed once it holds this many bytes, as with
/// Prometheus's default `--storage.remote.read-max-bytes-in-frame`.
pub const MAX_FRAME_BYTES: usize = 1 << 20;
/// The streamed response's content type, by which a client tells it apart.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

pub async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RemoteError> {
    let request: ReadRequest = decode_request(&headers, &body, "prometheus.ReadRequest")?;
    let response_type = negotiate(&request.accepted_response_types)?;
    let queries = request
        .queries
        .iter()
        .map(to_selection)
        .collect::<Result<Vec<_>, _>>()?;
    tokio::task::spawn_blocking(move || match response_type {
        ResponseType::Samples => select_samples(&state, &queries).map(samples_response),
        ResponseType::StreamedXorChunks => select_chunks(&state, &queries).map(chunks_response),
    })
    .await
    .map_err(|err| RemoteError::internal(&err.into()))?
}

/// The first accepted type sonde speaks; none listed means `SAMPLES`.
fn negotiate(accepted: &[i32]) -> Result<ResponseType, RemoteError> {
    if accepted.is_empty() {
        return Ok(ResponseType::Samples);
    }
    accepted
        .iter()
        .find_map(|&t| ResponseType::try_from(t).ok())
        .ok_or_else(|| {
            RemoteError::bad_request(format!(
                "none of the requested response types {accepted:?} is supported: sonde answers SAMPLES (0) and STREAMED_XOR_CHUNKS (1)"
            ))
        })
}

/// One query as the store takes it.
struct Selection {
    matchers: Vec<Matcher>,
    start_ms: i64,
    end_ms: i64,
}

fn to_selection(query: &prompb::Query) -> Result<Selection, RemoteError> {
    let matchers = query
        .matchers
        .iter()
        .map(to_matcher)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Selection {
        matchers,
        start_ms: query.start_timestamp_ms,
        end_ms: query.end_timestamp_ms,
    })
}

pub fn to_matcher(matcher: &prompb::LabelMatcher) -> Result<Matcher, RemoteError> {
    let op = match prompb::MatcherType::try_from(matcher.r#type) {
        Ok(prompb::MatcherType::Eq) => MatchOp::Equal,
        Ok(prompb::MatcherType::Neq) => MatchOp::NotEqual,
        Ok(prompb::MatcherType::Re) => MatchOp::Regex,
        Ok(prompb::MatcherType::Nre) => MatchOp::NotRegex,
        Err(_) => {
            return Err(RemoteError::bad_request(format!(
                "unknown label matcher type {} for label {:?}",
                matcher.r#type, matcher.name
            )))
        }
    };
    Matcher::new(op, &matcher.name, &matcher.value).map_err(|err| {
        RemoteError::bad_request(format!(
            "invalid regular expression for label {:?}: {err}",
            matcher.name
        ))
    })
}

/// Each query's series with their samples.
fn select_samples(
    state: &AppState,
    queries: &[Selection],
) -> Result<Vec<Vec<SeriesSamples>>, RemoteError> {
    let store = state.store.lock().expect("lock poisoned");
    let mut limit = SampleLimit::default();
    let mut results = Vec::with_capacity(queries.len());
    for query in queries {
        let selected = store
            .select(&query.matchers, query.start_ms, query.end_ms)
            .map_err(|err| RemoteError::internal(&err))?;
        limit.add(selected.iter().map(|s| s.samples.len()).sum())?;
        results.push(selected);
    }
    Ok(results)
}

/// Each query's series with their stored chunks.
fn select_chunks(
    state: &AppState,
    queries: &[Selection],
) -> Result<Vec<Vec<SeriesChunks>>, RemoteError> {
    let store = state.store.lock().expect("lock poisoned");
    let mut limit = SampleLimit::default();
    let mut results = Vec::with_capacity(queries.len());
    for query in queries {
        let selected = store
            .select_chunks(&query.matchers, query.start_ms, query.end_ms)
            .map_err(|err| RemoteError::internal(&err))?;
        let samples = selected
            .iter()
            .flat_map(|s| &s.chunks)
            .map(|c| xor::XorIter::new(&c.data).map_or(0, |chunk| usize::from(chunk.len())))
            .sum();
        limit.add(samples)?;
        results.push(selected);
    }
    Ok(results)
}

/// Counts a request's samples against [`MAX_SAMPLES`].
#[derive(Default)]
struct SampleLimit(usize);

impl SampleLimit {
    fn add(&mut self, samples: usize) -> Result<(), RemoteError> {
        self.0 += samples;
        if self.0 > MAX_SAMPLES {
            return Err(RemoteError::bad_request(format!(
                "the read request selects more than {MAX_SAMPLES} samples: narrow its time range or matchers"
            )));
        }
        Ok(())
    }
}

fn to_prompb_labels(labels: &Labels) -> Vec<prompb::Label> {
    labels
        .iter()
        .map(|(name, value)| prompb::Label {
            name: name.to_string(),
            value: value.to_string(),
        })
        .collect()
}

fn samples_response(results: Vec<Vec<SeriesSamples>>) -> Response {
    let response = prompb::ReadResponse {
        results: results
            .into_iter()
            .map(|series| prompb::QueryResult {
                timeseries: series
                    .into_iter()
                    .map(|s| prompb::TimeSeries {
                        labels: to_prompb_labels(&s.labels),
                        samples: s
                            .samples
                            .into_iter()
                            .map(|(timestamp, value)| prompb::Sample { value, timestamp })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::CONTENT_ENCODING, "snappy"),
        ],
        compress(&response.encode_to_vec()),
    )
        .into_response()
}

/// The chunks of each query as frames of at most about [`MAX_FRAME_BYTES`]:
/// a series whose chunks do not fit goes on in the next frame, under the
/// same labels.
fn chunks_response(results: Vec<Vec<SeriesChunks>>) -> Response {
    let mut body = Vec::new();
    for (index, series) in results.into_iter().enumerate() {
        let mut frame = prompb::ChunkedReadResponse {
            chunked_series: Vec::new(),
            query_index: index as i64,
        };
        let mut frame_bytes = 0;
        for s in series {
            let labels = to_prompb_labels(&s.labels);
            let labels_bytes: usize = labels.iter().map(|l| l.encoded_len()).sum();
            let mut current = prompb::ChunkedSeries {
                labels: labels.clone(),
                chunks: Vec::new(),
            };
            frame_bytes += labels_bytes;
            for chunk in s.chunks {
                frame_bytes += chunk.data.len() + 32;
                current.chunks.push(prompb::Chunk {
                    min_time_ms: chunk.min_time,
                    max_time_ms: chunk.max_time,
                    r#type: prompb::ChunkEncoding::Xor as i32,
                    data: chunk.data,
                });
                if frame_bytes >= MAX_FRAME_BYTES {
                    frame.chunked_series.push(std::mem::replace(
                        &mut current,
                        prompb::ChunkedSeries {
                            labels: labels.clone(),
                            chunks: Vec::new(),
                        },
                    ));
                    write_frame(&mut body, &frame);
                    frame.chunked_series.clear();
                    frame_bytes = labels_bytes;
                }
            }
            if !current.chunks.is_empty() {
                frame.chunked_series.push(current);
            }
        }
        if !frame.chunked_series.is_empty() {
            write_frame(&mut body, &frame);
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, STREAMED_CONTENT_TYPE)],
        body,
    )
        .into_response()
}

/// Appends one frame: uvarint length, CRC32C (Castagnoli) of the message in
/// big endian, the message.
fn write_frame(out: &mut Vec<u8>, message: &prompb::ChunkedReadResponse) {
    let bytes = message.encode_to_vec();
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend(crc32c::crc32c(&bytes).to_be_bytes());
    out.extend(bytes);
}

/// Splits a streamed body back into its messages, checking each frame's
/// checksum: what a streaming client does.
pub fn read_frames(mut body: &[u8]) -> Result<Vec<prompb::ChunkedReadResponse>, String> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        let length = prost::encoding::decode_varint(&mut body).map_err(|e| e.to_string())?;
        let length = usize::try_from(length).map_err(|e| e.to_string())?;
        if body.len() < 4 || body.len() - 4 < length {
            return Err(format!(
                "truncated frame: {length} bytes declared, {} left",
                body.len().saturating_sub(4)
            ));
        }
        let (checksum, rest) = body.split_at(4);
        let (message, rest) = rest.split_at(length);
        let expected = u32::from_be_bytes(checksum.try_into().expect("split at 4"));
        if crc32c::crc32c(message) != expected {
            return Err("frame checksum mismatch".into());
        }
        frames.push(prompb::ChunkedReadResponse::decode(message).map_err(|e| e.to_string())?);
        body = rest;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_corruption_is_caught() {
        let frame = |index| prompb::ChunkedReadResponse {
            chunked_series: vec![prompb::ChunkedSeries {
                labels: vec![prompb::Label {
                    name: "__name__".into(),
                    value: "x".into(),
                }],
                chunks: vec![prompb::Chunk {
                    min_time_ms: 1,
                    max_time_ms: 2,
                    r#type: prompb::ChunkEncoding::Xor as i32,
                    data: vec![0, 1, 2],
                }],
            }],
            query_index: index,
        };
        let mut body = Vec::new();
        write_frame(&mut body, &frame(0));
        write_frame(&mut body, &frame(1));
        assert_eq!(read_frames(&body).unwrap(), [frame(0), frame(1)]);
        let mut corrupt = body.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert!(read_frames(&corrupt).is_err());
        assert!(read_frames(&body[..body.len() - 1]).is_err());
    }
}
