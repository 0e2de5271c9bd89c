//! Every log line the test binary writes at `debug` level or above, from every thread, kept to be searched.
//!
//! One subscriber for the whole binary, installed as the global default on first use: a subscriber set per
//! test (`with_default`) sees only its own thread, and a log line first reached on a thread with none is then
//! marked as wanted by nobody, so that another test's capture misses it. A global one is never bypassed.
//!
//! Global means every test of the binary (all the modules of `it`) logs into it from the first [`capture`]
//! to the end of the run, kept in memory; so `debug`, not `trace`: the project's own lines are all at
//! `debug` or above, and what `trace` adds is the dependencies' chatter. Nothing else in the binary may
//! install a global subscriber (a test that wants its own lines uses `with_default`).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Starts capturing (once per binary); what is logged from then on, by any test, is in [`captured`].
pub fn capture() {
    SINK.get_or_init(|| {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other test of this binary installs a global subscriber");
        sink
    });
}

/// Everything logged since [`capture`] was first called.
pub fn captured() -> String {
    let sink = SINK.get().expect("capture() was called first");
    String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned()
}
