//! Recording on the call's timeline from a guest: markers with typed values, and faults on
//! the call's legs (see the WIT `markers` and `legs` interfaces).
//!
//! ```text
//! mark("billing.open", &[("attempt", 2.into()), ("target", url.as_str().into())]);
//! fault("billing", Impact::Failed, "rejected", "the billing API answered 401");
//! ```

use crate::bindings::switchboard::call::{legs, markers};
use crate::{Impact, Value};

/// Records marker `name` with `attributes`.
pub fn mark(name: &str, attributes: &[(&str, Value)]) {
    let attributes: Vec<(String, Value)> = attributes.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect();
    markers::emit(name, &attributes);
}

/// Reports a fault on `leg`.
pub fn fault(leg: &str, impact: Impact, cause: &str, detail: &str) {
    legs::fault(leg, impact, cause, detail);
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_owned())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<bool> for Value {
    fn from(flag: bool) -> Self {
        Value::Flag(flag)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

macro_rules! integer_values {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
    )*};
}
integer_values!(u8, u16, u32, u64, usize, i32, i64);
