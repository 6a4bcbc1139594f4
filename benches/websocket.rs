//! WebSocket transport micro-benchmarks.
//!
//! - `ws_frame_decode`: `FrameDecoder::decode` over a read buffer of masked
//!   client binary frames (as a browser sends them), producing the MQTT
//!   byte stream. Frames of 1 KiB (64 of them per buffer) and one frame of
//!   1 MiB. The decoder unmasks in place, so each iteration gets a fresh copy
//!   of the buffer from `iter_batched`'s untimed setup.
//! - `ws_apply_mask`: the word-at-a-time XOR over 1 KiB and 1 MiB.

use bytes::{BufMut, BytesMut};
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use ringmq::websocket::{apply_mask, write_frame_header, FrameDecoder, OpCode};

const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// `count` masked binary frames of `payload` bytes each, as a client sends.
fn client_frames(payload: usize, count: usize) -> (BytesMut, usize) {
    let mut wire = BytesMut::new();
    let mut total_payload = 0;
    for f in 0..count {
        // The server writer produces the right length form; set the mask
        // bit and append the key to make it a client frame.
        let start = wire.len();
        write_frame_header(&mut wire, OpCode::Binary, true, payload);
        wire[start + 1] |= 0x80;
        wire.put_slice(&MASK);
        let body_start = wire.len();
        wire.extend((0..payload).map(|i| (i + f) as u8));
        apply_mask(&mut wire[body_start..], MASK, 0);
        total_payload += payload;
    }
    (wire, total_payload)
}

fn label(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{}MiB", bytes >> 20)
    } else {
        format!("{}KiB", bytes >> 10)
    }
}

fn frame_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_frame_decode");
    for (payload, count) in [(1024usize, 64usize), (1 << 20, 1)] {
        let (wire, total_payload) = client_frames(payload, count);
        // Sanity: the decoder gives back the whole unmasked payload.
        let mut decoder = FrameDecoder::new(2 << 20);
        let mut mqtt = BytesMut::new();
        let control = decoder.decode(&mut wire.clone(), &mut mqtt).expect("valid");
        assert!(control.is_none());
        assert_eq!(mqtt.len(), total_payload);
        assert_eq!(mqtt[1], 1);

        group.throughput(Throughput::Bytes(wire.len() as u64));
        let id = format!("{}_frames/x{count}", label(payload));
        group.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter_batched(
                || (wire.clone(), BytesMut::new()),
                |(mut input, mut mqtt)| {
                    let control = decoder.decode(&mut input, &mut mqtt);
                    debug_assert!(matches!(control, Ok(None)));
                    (input, mqtt)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_apply_mask");
    for size in [1024usize, 1 << 20] {
        let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(label(size)), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), MASK, 0))
        });
    }
    group.finish();
}

criterion_group!(benches, frame_decode, mask);
criterion_main!(benches);
