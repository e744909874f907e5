//! What the programs write events to, whichever transport runs.

use crate::asm::Asm;
use crate::transport::emit::Frame;
use crate::transport::perfbuf::PerfMaps;
use crate::transport::ringbuf::RingMaps;
use crate::transport::slots::SlotMaps;

/// The maps of the transport that runs, as the programs see them.
#[derive(Clone, Copy, Debug)]
pub enum TransportMaps {
    Slots(SlotMaps),
    PerfBuf(PerfMaps),
    RingBuf(RingMaps),
}

impl TransportMaps {
    /// Stamp the event on the stack (see [`Frame`]) and write it to the
    /// transport. Keeps r6-r9.
    pub fn emit_output(&self, a: &mut Asm, f: &Frame) {
        match self {
            TransportMaps::Slots(s) => s.emit(a, f),
            TransportMaps::PerfBuf(p) => p.emit(a, f),
            TransportMaps::RingBuf(r) => r.emit(a, f),
        }
    }
}
