//! The host's rules, apart from the capabilities they govern: where a component may
//! connect ([`egress`]), which secret headers the host adds for it ([`secrets`]), and which
//! upgrades carry Twilio's signature ([`signature`]).

pub mod egress;
pub mod secrets;
pub mod signature;
