//! Workloads shared by the wasm test binaries (each binary has its own global allocator).

use std::collections::{BTreeMap, HashMap};

/// Churns a `BTreeMap` of formatted `String`s and a `HashMap` of `Vec`s for `rounds`
/// rounds, checking every value after each round: many small blocks of many sizes,
/// freed and reallocated in an order the collections decide.
pub fn btreemap_and_string_churn(rounds: u32) {
    let mut map: BTreeMap<u32, String> = BTreeMap::new();
    let mut hash: HashMap<String, Vec<u32>> = HashMap::new();
    for round in 0..rounds {
        for k in 0..2000u32 {
            let key = k.wrapping_mul(7919) % 5000;
            if (k + round) % 3 == 0 {
                map.remove(&key);
            } else {
                map.insert(key, format!("{key}:{round}:{}", "x".repeat((key % 97) as usize)));
            }
            hash.entry(format!("k{}", key % 300)).or_default().push(key);
        }
        for (key, value) in &map {
            let mut parts = value.splitn(3, ':');
            assert_eq!(parts.next().unwrap().parse::<u32>().unwrap(), *key);
            parts.next();
            assert_eq!(parts.next().unwrap().len(), (key % 97) as usize);
        }
        hash.retain(|k, v| {
            assert!(v.iter().all(|x| format!("k{}", x % 300) == *k));
            v.len() < 100
        });
    }
}
