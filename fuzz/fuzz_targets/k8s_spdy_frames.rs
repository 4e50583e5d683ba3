//! The SPDY frame reader and header-block reader the Kubernetes gateway relays exec streams
//! with, on arbitrary bytes in arbitrary chunks: never panics, never holds more than one frame
//! (8 bytes of head and at most 2^24 - 1 of data), and every frame it returns is exactly the
//! bytes it was given, in order (the relay passes frames unchanged).
//!
//! The first byte sets the chunk size (1 to 256).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sod_k8s::spdy::{FrameReader, HeaderReader, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let [chunk, rest @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk) + 1;
    let mut frames = FrameReader::new();
    let mut headers = HeaderReader::new(16 * 1024);
    let mut out = Vec::new();
    'feed: for piece in rest.chunks(chunk) {
        frames.push(piece);
        loop {
            match frames.next_frame() {
                Ok(Some(frame)) => {
                    assert_eq!(frame.raw().len(), 8 + frame.data().len());
                    assert!(frame.data().len() <= MAX_FRAME);
                    let _ = frame.stream_id();
                    if let Some(block) = frame.header_block() {
                        let _ = headers.read(block);
                    }
                    out.extend_from_slice(frame.raw());
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
            assert!(frames.held() <= 8 + MAX_FRAME);
        }
    }
    // What came out is a prefix of what went in.
    assert_eq!(&rest[..out.len()], &out[..]);
});
