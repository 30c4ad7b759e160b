// digest.h: SHA-256 digests of whole files, and the ledger a run directory
// keeps of the checkpoints it wrote.
//
// The ledger is `checksums.sha256` beside the checkpoints, in the format of
// `sha256sum` ("<64 hex digits>  <file name>" per line), so
// `sha256sum -c checksums.sha256` checks a run directory with no umrflow at
// hand. While a checkpoint is being replaced the ledger lists both the old and
// the new digest for its name, so a kill at any instant leaves a file whose
// digest the ledger accepts; a mismatch therefore means the file changed after
// it was written (disk, copy or hand), and reading it is refused.
#pragma once

#include <cstddef>
#include <string>

namespace umrflow {

/// SHA-256 (FIPS 180-4) of `n` bytes, as 64 lowercase hex digits.
std::string sha256_hex(const void* data, std::size_t n);

/// SHA-256 of the file at `path`, read in pieces. Throws std::runtime_error
/// naming the file when it cannot be read.
std::string sha256_file(const std::string& path);

/// The ledger that belongs to a checkpoint: checksums.sha256 in its folder.
std::string digest_ledger_for(const std::string& checkpoint);

/// Records `digest` for `checkpoint` in its ledger (written atomically). With
/// `keep_previous`, digests already listed for that name stay (the moment
/// before the new file replaces the old); without, they are dropped.
void record_digest(const std::string& checkpoint, const std::string& digest, bool keep_previous);

/// Drops every digest its ledger lists for `checkpoint` (a checkpoint that was
/// removed); nothing happens when the ledger lists none.
void forget_digest(const std::string& checkpoint);

/// Compares the file with its ledger. Returns false when no ledger lists it
/// (a file from elsewhere: nothing to compare), true when its digest is
/// listed; throws std::runtime_error naming the file and the ledger when the
/// ledger lists other digests, or when the ledger itself is malformed.
bool check_recorded_digest(const std::string& checkpoint);

}  // namespace umrflow
