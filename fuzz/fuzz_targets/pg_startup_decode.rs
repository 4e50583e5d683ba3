//! `decode_startup` on arbitrary bytes: never panics, always makes progress, and every packet
//! that decodes encodes back to exactly the bytes it was read from (and so re-decodes equal).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sod_postgres::codec::{Limits, decode_startup};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        let startup = match decode_startup(&mut buf, &limits) {
            Ok(Some(startup)) => startup,
            Ok(None) => {
                assert_eq!(buf.len(), before, "Ok(None) must not consume input");
                break;
            }
            Err(e) => {
                // The message is meant for the peer; building it must not panic either.
                let _ = (e.to_string(), e.sqlstate());
                break;
            }
        };
        assert!(buf.len() < before, "a decoded packet must consume input");
        let start = data.len() - before;
        let read = &data[start..data.len() - buf.len()];

        let _ = format!("{startup:?}");
        let _ = startup.param("user");

        let mut out = BytesMut::new();
        startup
            .encode(&mut out)
            .expect("a decoded startup packet encodes");
        assert_eq!(&out[..], read, "re-encoding changed the packet");

        let mut again = out.clone();
        let redecoded = decode_startup(&mut again, &limits)
            .expect("an encoded startup packet decodes")
            .expect("an encoded startup packet is whole");
        assert!(again.is_empty(), "re-decoding left bytes behind");
        assert_eq!(redecoded, startup, "re-decoding changed the packet");
    }
});
