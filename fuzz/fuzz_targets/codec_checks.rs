//! Checks of the codec's lazy list views, shared by the frontend and backend targets.

use sod_postgres::codec::{Formats, Oids, Values};

/// The codes iterate as many as `len` says, and `get` agrees with the iterator.
pub fn check_formats(formats: Formats<'_>) {
    let all = formats.to_vec();
    assert_eq!(all.len(), formats.len());
    assert_eq!(formats.iter().len(), formats.len());
    assert_eq!(formats.is_empty(), all.is_empty());
    for (i, f) in all.iter().enumerate() {
        assert_eq!(formats.get(i), Some(*f));
    }
    assert_eq!(formats.get(all.len()), None);
    for i in 0..=all.len().min(64) {
        let _ = formats.format_of(i);
    }
    let _ = format!("{formats:?}");
}

/// The OIDs iterate as many as `len` says, and `get` agrees with the iterator.
pub fn check_oids(oids: Oids<'_>) {
    let all = oids.to_vec();
    assert_eq!(all.len(), oids.len());
    assert_eq!(oids.iter().len(), oids.len());
    for (i, oid) in all.iter().enumerate() {
        assert_eq!(oids.get(i), Some(*oid));
    }
    assert_eq!(oids.get(all.len()), None);
    let _ = format!("{oids:?}");
}

/// Every value is where its span says within `body`, the message body it was parsed from.
pub fn check_values(values: Values<'_>, body: &[u8]) {
    let all = values.to_vec();
    assert_eq!(
        all.len(),
        values.len(),
        "a validated list yields every value"
    );
    let spans: Vec<_> = values.spans().collect();
    assert_eq!(spans.len(), values.len());
    for (value, span) in all.iter().zip(&spans) {
        match (value, span) {
            (None, None) => {}
            (Some(v), Some(range)) => assert_eq!(body.get(range.clone()), Some(*v)),
            _ => panic!("a value and its span disagree on NULL"),
        }
    }
    assert_eq!(values.get(all.len()), None);
    if let Some(first) = all.first() {
        assert_eq!(values.get(0), Some(*first));
    }
    let offset = values.offset();
    let encoded = values.as_bytes();
    assert_eq!(
        body.get(offset..offset + encoded.len()),
        Some(encoded),
        "the encoded values lie at their offset"
    );
    let _ = format!("{values:?}");
}
