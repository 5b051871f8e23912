//! Prints the encoded size of family records and their parts, for tuning.
fn main() {
    let path = std::env::args().nth(1).expect("store path");
    let store = storage::Store::open(std::path::Path::new(&path)).expect("store");
    let (mut total, mut count, mut evaluation, mut members, mut entitlements, mut history) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    for record in store.families_after(None, 1000) {
        let record = record.expect("record");
        total += storage::codec::encode(&record).len();
        evaluation += storage::codec::encode(&record.evaluation).len();
        members += storage::codec::encode(&record.members).len();
        entitlements += storage::codec::encode(&record.entitlements).len();
        history += storage::codec::encode(&record.history).len();
        count += 1;
    }
    println!("{count} records: mean {} B; evaluation {} B, members {} B, entitlements {} B, history {} B",
        total / count.max(1), evaluation / count.max(1), members / count.max(1), entitlements / count.max(1), history / count.max(1));
}
