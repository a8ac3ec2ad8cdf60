//! Arbitrary bytes as a `.index` file: `index::load` must answer an index
//! or a clean error, never panic; what it loads must save and load back
//! unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((pos, ix)) = repozo::index::load(data, "Data.fs.index") {
        let again = repozo::index::load(&repozo::index::save(pos, &ix), "again.index")
            .expect("a saved index loads");
        assert_eq!(again, (pos, ix));
    }
});
