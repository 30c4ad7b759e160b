// The active RankSync (umrflow/rank_sync.h).
#include "umrflow/rank_sync.h"

#include <atomic>

namespace umrflow {

namespace {
std::atomic<const RankSync*> g_active{nullptr};
}  // namespace

const RankSync* rank_sync() { return g_active.load(); }

RankSyncScope::RankSyncScope(const RankSync* sync) : previous_(g_active.exchange(sync)) {}
RankSyncScope::~RankSyncScope() { g_active.store(previous_); }

}  // namespace umrflow
