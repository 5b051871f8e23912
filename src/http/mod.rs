//! The HTTP layer: the public port (agency feeds, SMS callbacks) and the admin
//! port (operators). One mapping from errors to responses lives here: a client
//! gets a clear reason for its own mistakes; internal details are logged once
//! and never sent.

pub mod admin;
pub mod public;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError};
use tracing::Instrument;

/// A span per request, named by the route's pattern (`/v1/citizens/{iin}`), never
/// by its path, so that no IIN in a URL reaches the logs.
pub async fn trace_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("http", method = %request.method(), route = %route);
    let started = Instant::now();
    let response = next.call(request).instrument(span.clone()).await?;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request served"
        );
    });
    Ok(response)
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Busy(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(error.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(%detail, "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Busy(_) => {
                response.insert_header(("Retry-After", "1"));
            }
            ApiError::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            _ => {}
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// The bearer token of a request, if any.
pub fn bearer(request: &actix_web::HttpRequest) -> Option<&str> {
    request
        .headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    if given.len() != expected.len() {
        return false;
    }
    given
        .iter()
        .zip(expected)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// `Ok` if `wanted` is `None`, or if the request's connection showed a
/// client certificate for `wanted`; else a 403 that says which it showed.
pub fn require_certificate(
    request: &actix_web::HttpRequest,
    wanted: Option<&rustls::pki_types::ServerName<'static>>,
    who: &str,
) -> Result<(), ApiError> {
    let Some(wanted) = wanted else {
        return Ok(());
    };
    let problem = match request.conn_data::<crate::tls::ClientCertificate>() {
        None => "shows no client certificate",
        Some(certificate) if !certificate.names(wanted) => {
            "shows a client certificate that is not for its client certificate name"
        }
        Some(_) => return Ok(()),
    };
    Err(ApiError::Forbidden(format!(
        "{who} must connect with its client certificate: this connection {problem}"
    )))
}
