//! MQTT 5 enhanced authentication (spec 4.12): where an authentication
//! method plugs in. None ships yet, so a CONNECT naming any method gets
//! CONNACK 0x8C "Bad authentication method".
//!
//! A method implements [`AuthMethod`] and is registered in [`Methods`];
//! the shard asks `Methods::find` at CONNECT, and would then exchange AUTH
//! packets (reason 0x18 "Continue authentication") with the client until
//! the method answers `Success` or `Failure`.

use bytes::Bytes;

/// What a method says after each piece of authentication data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send this data back in an AUTH (0x18) and wait for the next.
    Continue(Bytes),
    /// Accept the client (CONNACK 0x00, or AUTH 0x00 on
    /// re-authentication), with optional final data.
    Success(Option<Bytes>),
    /// Refuse the client (CONNACK / DISCONNECT 0x87 "Not authorized").
    Failure,
}

/// One authentication method (e.g. SCRAM-SHA-256), with its state per
/// exchange kept by the implementor.
pub trait AuthMethod {
    /// The Authentication Method name clients send.
    fn name(&self) -> &str;
    /// The CONNECT's Authentication Data, starting an exchange.
    fn start(&mut self, data: Option<&Bytes>) -> AuthStep;
    /// The next AUTH packet's data.
    fn step(&mut self, data: Option<&Bytes>) -> AuthStep;
}

/// The methods the broker offers: none for now.
#[derive(Default)]
pub struct Methods {
    methods: Vec<Box<dyn AuthMethod>>,
}

impl std::fmt::Debug for Methods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.methods.iter().map(|m| m.name()))
            .finish()
    }
}

impl Methods {
    /// The method a CONNECT names, if the broker offers it.
    pub fn find(&mut self, name: &str) -> Option<&mut (dyn AuthMethod + 'static)> {
        self.methods
            .iter_mut()
            .find(|m| m.name() == name)
            .map(|m| m.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_method_is_offered() {
        let mut methods = Methods::default();
        assert!(methods.find("SCRAM-SHA-1").is_none());
        assert_eq!(format!("{methods:?}"), "[]");
    }
}
