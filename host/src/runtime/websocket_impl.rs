//! Host side of `switchboard:call/websocket`: the `connection` resource's methods.
//!
//! Table errors (a stale handle) trap; everything about the connection itself is an
//! `error-code` returned to the guest.

use wasmtime::component::Resource;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi_io::poll::subscribe;

use super::bindings::switchboard::call::websocket::{Host, HostConnection};
use super::bindings::{ErrorCode, Message};
use super::state::CallState;
use super::types::{Connection, Writable};

impl Host for CallState {}

impl HostConnection for CallState {
    fn send(&mut self, connection: Resource<Connection>, message: Message) -> wasmtime::Result<Result<(), ErrorCode>> {
        Ok(self.table.get_mut(&connection)?.socket.send(message.into()).map_err(ErrorCode::from))
    }

    fn receive(&mut self, connection: Resource<Connection>) -> wasmtime::Result<Result<Option<Message>, ErrorCode>> {
        Ok(self.table.get_mut(&connection)?.socket.receive().map(|message| message.map(Message::from)).map_err(ErrorCode::from))
    }

    fn subscribe(&mut self, connection: Resource<Connection>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(&mut self.table, connection)
    }

    fn writable(&mut self, connection: Resource<Connection>) -> wasmtime::Result<Resource<DynPollable>> {
        let signal = Writable(self.table.get(&connection)?.socket.writable_signal());
        let signal = self.table.push_child(signal, &connection)?;
        // Owned: dropping the pollable deletes the signal too.
        subscribe(&mut self.table, signal)
    }

    fn close(&mut self, connection: Resource<Connection>, code: u16, reason: String) -> wasmtime::Result<Result<(), ErrorCode>> {
        Ok(self.table.get_mut(&connection)?.socket.close(code, reason).map_err(ErrorCode::from))
    }

    fn protocol(&mut self, connection: Resource<Connection>) -> wasmtime::Result<Option<String>> {
        Ok(self.table.get(&connection)?.socket.protocol())
    }

    fn queued_bytes(&mut self, connection: Resource<Connection>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&connection)?.socket.queued_bytes())
    }

    fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        // Dropping the host object releases the queue's sender: the writer then closes
        // the socket with 1000 unless a close was already sent.
        self.table.delete(connection)?;
        Ok(())
    }
}
