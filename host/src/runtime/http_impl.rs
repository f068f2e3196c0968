//! `wasi:http` in the linker: wasmtime-wasi-http's bindings, with two functions of our own
//! over theirs (an `http-error-code` that reads the errors of response bodies, and a
//! `handle` that frees the request options). The policy is in [`super::http_hooks`].

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler;
use wasmtime_wasi_http::p2::bindings::http::types::{DnsErrorPayload, ErrorCode, TlsAlertReceivedPayload};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::{Error as WasiHttpError, WasiHttpView};

use super::state::CallState;

/// The `error-code` of a failed body read: wasmtime-wasi-http hands the guest a stream
/// error holding the body's error, which its own `http-error-code` cannot read back (it
/// looks only for an `error-code`), so the guest would learn nothing. This reads it.
fn body_error_code(error: &wasmtime::Error) -> Option<ErrorCode> {
    if let Some(code) = error.downcast_ref::<ErrorCode>() {
        return Some(code.clone());
    }
    let error = error.downcast_ref::<WasiHttpError>()?;
    Some(match error {
        WasiHttpError::ConnectionReadTimeout => ErrorCode::ConnectionReadTimeout,
        WasiHttpError::HttpResponseTimeout => ErrorCode::HttpResponseTimeout,
        WasiHttpError::HttpResponseBodySize(cap) => ErrorCode::HttpResponseBodySize(*cap),
        WasiHttpError::HttpRequestBodySize(cap) => ErrorCode::HttpRequestBodySize(*cap),
        WasiHttpError::HttpResponseIncomplete => ErrorCode::HttpResponseIncomplete,
        WasiHttpError::HttpProtocolError => ErrorCode::HttpProtocolError,
        WasiHttpError::ConnectionTerminated => ErrorCode::ConnectionTerminated,
        WasiHttpError::HttpRequestDenied => ErrorCode::HttpRequestDenied,
        WasiHttpError::ConnectionRefused => ErrorCode::ConnectionRefused,
        WasiHttpError::ConnectionTimeout => ErrorCode::ConnectionTimeout,
        WasiHttpError::TlsProtocolError => ErrorCode::TlsProtocolError,
        WasiHttpError::TlsCertificateError => ErrorCode::TlsCertificateError,
        WasiHttpError::DnsError { rcode, info_code } => {
            ErrorCode::DnsError(DnsErrorPayload { rcode: rcode.clone(), info_code: *info_code })
        }
        WasiHttpError::TlsAlertReceived { alert_id, alert_message } => {
            ErrorCode::TlsAlertReceived(TlsAlertReceivedPayload { alert_id: *alert_id, alert_message: alert_message.clone() })
        }
        WasiHttpError::InternalError(detail) => ErrorCode::InternalError(detail.clone()),
        other => ErrorCode::InternalError(Some(other.to_string())),
    })
}

/// `outgoing-handler.handle`, freeing the `request-options` the guest handed over:
/// wasmtime-wasi-http (48 through 50) reads them but leaves them in the call's resource table, so every
/// request with options would hold 48 bytes until the call ended.
fn handle(
    mut store: wasmtime::StoreContextMut<'_, CallState>,
    (request, options): (Resource<HostOutgoingRequest>, Option<Resource<wasmtime_wasi_http::RequestOptions>>),
) -> wasmtime::Result<(Result<Resource<HostFutureIncomingResponse>, ErrorCode>,)> {
    let state = store.data_mut();
    let borrowed = options.as_ref().map(|options| Resource::new_own(options.rep()));
    let outcome = outgoing_handler::Host::handle(&mut state.http(), request, borrowed);
    if let Some(options) = options {
        state.table.delete(options)?;
    }
    match outcome {
        Ok(future) => Ok((Ok(future),)),
        // An error code goes back to the guest; anything else is a trap.
        Err(error) => Ok((Err(error.downcast()?),)),
    }
}

/// Adds `wasi:http` (types and outgoing-handler) to the linker, with an `http-error-code`
/// that can read the errors of response bodies and a `handle` that frees its options.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    linker.allow_shadowing(true);
    linker.instance("wasi:http/outgoing-handler@0.2.12")?.func_wrap("handle", handle)?;
    linker.instance("wasi:http/types@0.2.12")?.func_wrap(
        "http-error-code",
        |store: wasmtime::StoreContextMut<'_, CallState>, (error,): (Resource<wasmtime_wasi_io::streams::Error>,)| {
            let error = store.data().table.get(&error)?;
            Ok((body_error_code(error),))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
