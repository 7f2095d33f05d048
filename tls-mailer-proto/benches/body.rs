//! DATA encoding throughput: `DotStuffer` (span copies found with memchr)
//! against a byte-at-a-time baseline written the obvious way, in the same
//! run so the ratio is what counts. Run with `cargo bench -p tls-mailer-proto`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tls_mailer_proto::{BdatFramer, DotStuffer};

/// The obvious encoder: one byte at a time, same output.
fn naive_stuff(input: &[u8], out: &mut Vec<u8>) {
    let mut at_line_start = true;
    let mut pending_cr = false;
    for &byte in input {
        if pending_cr {
            out.extend_from_slice(b"\r\n");
            at_line_start = true;
            pending_cr = false;
            if byte == b'\n' {
                continue;
            }
        }
        match byte {
            b'\r' => pending_cr = true,
            b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                if at_line_start && byte == b'.' {
                    out.push(b'.');
                }
                out.push(byte);
                at_line_start = false;
            }
        }
    }
    if pending_cr || !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// A 4 MiB message of base64-like 76-byte lines, some starting with a dot.
fn message() -> Vec<u8> {
    let mut message = Vec::with_capacity(4 << 20);
    let mut line = 0u32;
    while message.len() < 4 << 20 {
        if line % 50 == 0 {
            message.push(b'.');
        }
        message.extend((0..76).map(|i| b'A' + ((i + line) % 26) as u8));
        message.extend_from_slice(b"\r\n");
        line += 1;
    }
    message
}

fn encoders(c: &mut Criterion) {
    let message = message();
    let mut expected = Vec::new();
    naive_stuff(&message, &mut expected);
    let mut check = Vec::new();
    let mut stuffer = DotStuffer::new();
    stuffer.encode(&message, &mut check);
    stuffer.finish(&mut check);
    assert_eq!(check, expected, "both encoders must agree");

    let mut group = c.benchmark_group("data-encoding-4MiB");
    group.throughput(Throughput::Bytes(message.len() as u64));
    let mut out = Vec::with_capacity(message.len() * 2);
    group.bench_function("naive byte loop", |b| {
        b.iter(|| {
            out.clear();
            naive_stuff(black_box(&message), &mut out);
        })
    });
    group.bench_function("DotStuffer, 64 KiB chunks", |b| {
        b.iter(|| {
            out.clear();
            let mut stuffer = DotStuffer::new();
            for chunk in black_box(&message).chunks(64 * 1024) {
                stuffer.encode(chunk, &mut out);
            }
            stuffer.finish(&mut out);
        })
    });
    group.bench_function("BdatFramer, 64 KiB chunks", |b| {
        b.iter(|| {
            out.clear();
            let mut framer = BdatFramer::new();
            for chunk in black_box(&message).chunks(64 * 1024) {
                framer.encode(chunk, &mut out);
            }
            framer.finish(&mut out);
        })
    });
    group.finish();
}

criterion_group!(benches, encoders);
criterion_main!(benches);
