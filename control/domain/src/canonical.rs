//! Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, strings escaped as
//! serde_json escapes them, numbers as serde_json prints them. Independent of serde_json's
//! `preserve_order` feature (keys are sorted here, not by the map type).

use serde_json::Value;

/// Writes `value` as canonical JSON.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value);
    out
}

fn write_str(out: &mut String, s: &str) {
    // serde_json's escaping of a plain string cannot fail.
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

fn write(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, v);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                if let Some(v) = map.get(k.as_str()) {
                    write(out, v);
                }
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorted_keys_no_whitespace() {
        let v = json!({"b": 1, "a": {"z": [1, 2, {"y": null, "x": true}], "é": "q\"\n"}, "A": 1.5});
        assert_eq!(
            to_canonical_string(&v),
            r#"{"A":1.5,"a":{"z":[1,2,{"x":true,"y":null}],"é":"q\"\n"},"b":1}"#
        );
    }

    #[test]
    fn same_value_same_bytes_whatever_the_input_layout() {
        let a: Value = serde_json::from_str("{ \"k\" : [ 1 , 2 ] , \"j\":\"v\" }").unwrap();
        let b: Value = serde_json::from_str(r#"{"j":"v","k":[1,2]}"#).unwrap();
        assert_eq!(to_canonical_string(&a), to_canonical_string(&b));
        assert_eq!(to_canonical_string(&a), r#"{"j":"v","k":[1,2]}"#);
    }

    #[test]
    fn scalars() {
        assert_eq!(to_canonical_string(&json!(null)), "null");
        assert_eq!(to_canonical_string(&json!("a\u{1}")), "\"a\\u0001\"");
        assert_eq!(to_canonical_string(&json!(-3)), "-3");
        assert_eq!(to_canonical_string(&json!([])), "[]");
        assert_eq!(to_canonical_string(&json!({})), "{}");
    }
}
