//! The legs of one call: the names a guest gave them, checked, and the lane each marker is
//! drawn on. The host never knows a component's leg names in advance; it learns them
//! from the guest (`legs.name-inbound`, `legs.declare`, `connect-options.leg`, the
//! `switchboard-leg` header of a `wasi:http` request).

/// The lane of the host's own markers.
pub const HOST_LEG: &str = "host";
/// The lane of a guest's markers that name no leg, and the leg of its traps.
pub const GUEST_LEG: &str = "guest";
/// The leg the host's policy refusals and limits are reported on.
pub const POLICY_LEG: &str = "policy";
/// The inbound connection's leg until the guest names it.
pub const DEFAULT_INBOUND_LEG: &str = "caller";
/// An outbound connection's leg when the guest names none.
pub const DEFAULT_OUTBOUND_LEG: &str = "outbound";
/// The leg of a `wasi:http` request that names none (no `switchboard-leg` header).
pub const DEFAULT_HTTP_LEG: &str = "http";
/// Most legs a call may have.
pub const MAX_LEGS: usize = 16;
/// Longest leg name, characters.
pub const MAX_LEG_NAME: usize = 32;

/// Why a leg name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegError {
    /// Not 1 to 32 characters of `a-z`, `0-9`, `-`, `_`.
    #[error("leg name {0:?} is not 1 to 32 characters of a-z, 0-9, - and _")]
    Invalid(String),
    /// One of the host's own legs.
    #[error("leg name {0:?} is the host's own")]
    Reserved(String),
    /// The call already has the most legs it may.
    #[error("a call has at most {MAX_LEGS} legs")]
    TooMany,
}

/// Checks a leg name.
pub fn check_name(name: &str) -> Result<(), LegError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_LEG_NAME
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(LegError::Invalid(name.chars().take(64).collect()));
    }
    if [HOST_LEG, GUEST_LEG, POLICY_LEG].contains(&name) {
        return Err(LegError::Reserved(name.to_owned()));
    }
    Ok(())
}

/// The legs one call knows.
#[derive(Debug, Clone)]
pub struct CallLegs {
    inbound: String,
    known: Vec<String>,
}

impl Default for CallLegs {
    fn default() -> Self {
        CallLegs { inbound: DEFAULT_INBOUND_LEG.to_owned(), known: vec![DEFAULT_INBOUND_LEG.to_owned(), DEFAULT_OUTBOUND_LEG.to_owned()] }
    }
}

impl CallLegs {
    /// The inbound connection's leg.
    pub fn inbound(&self) -> &str {
        &self.inbound
    }

    /// Adds `name` (checked); adding a known leg again is fine.
    pub fn add(&mut self, name: &str) -> Result<(), LegError> {
        check_name(name)?;
        if self.known.iter().any(|known| known == name) {
            return Ok(());
        }
        if self.known.len() >= MAX_LEGS {
            return Err(LegError::TooMany);
        }
        self.known.push(name.to_owned());
        Ok(())
    }

    /// Names the inbound leg.
    pub fn name_inbound(&mut self, name: &str) -> Result<(), LegError> {
        self.add(name)?;
        self.inbound = name.to_owned();
        Ok(())
    }

    /// Whether `name` is one of this call's legs.
    pub fn knows(&self, name: &str) -> bool {
        self.known.iter().any(|known| known == name)
    }

    /// The lane of a guest marker called `name`: the leg its first segment names, if the
    /// call has that leg, else the guest's own.
    pub fn lane_of(&self, name: &str) -> String {
        match name.split_once('.') {
            Some((prefix, _)) if self.knows(prefix) => prefix.to_owned(),
            _ => GUEST_LEG.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_lanes_follow_known_legs() {
        let mut legs = CallLegs::default();
        assert_eq!(legs.lane_of("deepgram.open"), "guest");
        legs.add("deepgram").expect("valid");
        assert_eq!(legs.lane_of("deepgram.open"), "deepgram");
        assert_eq!(legs.lane_of("utterance"), "guest");
        legs.name_inbound("twilio").expect("valid");
        assert_eq!((legs.inbound(), legs.lane_of("twilio.start").as_str()), ("twilio", "twilio"));
        assert!(matches!(legs.add("Deepgram"), Err(LegError::Invalid(_))));
        assert!(matches!(legs.add(""), Err(LegError::Invalid(_))));
        assert!(matches!(legs.add("policy"), Err(LegError::Reserved(_))));
        for n in 0..MAX_LEGS {
            let _ = legs.add(&format!("leg{n}"));
        }
        assert_eq!(legs.add("one-more"), Err(LegError::TooMany));
    }
}
