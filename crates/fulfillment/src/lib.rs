//! Fulfillment over HTTP: what the `http` fulfillment mode (CONTRACT.md §7)
//! needs, and what event webhooks (§9) share with it.
//!
//! Layout:
//! - [`signature`]: Standard Webhooks 1.0 secrets, signing and verification.
//! - [`poster`]: [`SignedPoster`], one pooled client posting signed JSON and
//!   reporting the status, body head and `Retry-After`, or why no answer came.
//! - [`http`]: [`HttpFulfillment`], the [`dofs_core::Fulfillment`] backend
//!   that posts each attempt to the user's service and turns the answer into
//!   an [`dofs_core::Outcome`].
//! - [`stub`]: [`serve_stub`], a receiver users start from (and the tests'
//!   end-to-end partner): verifies, de-duplicates, answers with a reference.

pub mod http;
pub mod poster;
pub mod signature;
pub mod stub;

pub use http::{ConfigError, HttpConfig, HttpFulfillment};
pub use poster::{PostResult, Response, SignedPoster, TransportError};
pub use signature::{sign, verify, Secret, SecretError, VerifyError};
pub use stub::{serve_stub, StubConfig};
