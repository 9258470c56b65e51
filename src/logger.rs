//! Log sink: `/dev/kmsg` in early boot (the journal picks it up, the
//! console shows it), stderr elsewhere.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

enum Sink {
    Kmsg(Mutex<File>),
    Stderr,
}

struct Logger(Sink);

impl Log for Logger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        match &self.0 {
            Sink::Kmsg(file) => {
                // <N> is the syslog priority; one write is one kernel record.
                let prio = match record.level() {
                    Level::Error => 3,
                    Level::Warn => 4,
                    Level::Info => 6,
                    Level::Debug | Level::Trace => 7,
                };
                let text = record.args().to_string();
                if let Ok(mut f) = file.lock() {
                    // kmsg refuses records over ~1 KiB: split rather than lose them.
                    for chunk in text.as_bytes().chunks(800) {
                        let mut line = format!("<{prio}>veriroot: ").into_bytes();
                        line.extend_from_slice(chunk);
                        line.push(b'\n');
                        // Nowhere left to report a failing log write.
                        let _ = f.write_all(&line);
                    }
                }
            }
            Sink::Stderr => {
                let tag = match record.level() {
                    Level::Error => "error: ",
                    Level::Warn => "warning: ",
                    _ => "",
                };
                let _ = writeln!(std::io::stderr(), "veriroot: {tag}{}", record.args());
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the logger. `kmsg`: write to /dev/kmsg if it can be opened.
pub fn init(kmsg: bool, verbose: bool) {
    let sink = match kmsg.then(|| std::fs::OpenOptions::new().write(true).open("/dev/kmsg")) {
        Some(Ok(f)) => Sink::Kmsg(Mutex::new(f)),
        _ => Sink::Stderr,
    };
    let level = if verbose {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    if log::set_boxed_logger(Box::new(Logger(sink))).is_ok() {
        log::set_max_level(level);
    }
}
