#include "cluster/snapshot_pages.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace switchboard::cluster {
namespace {

// What a page carries besides its sockets, at most (page numbers at their
// widest, the heartbeat whether or not the page has it).
size_t PageOverhead(const v1::Snapshot& snapshot, const std::string& id) {
  v1::Snapshot header;
  header.set_edge_id(snapshot.edge_id());
  header.set_incarnation(snapshot.incarnation());
  header.set_seq(snapshot.seq());
  header.set_snapshot_id(id);
  header.set_page(std::numeric_limits<uint32_t>::max());
  header.set_page_count(std::numeric_limits<uint32_t>::max());
  if (snapshot.has_heartbeat()) *header.mutable_heartbeat() = snapshot.heartbeat();
  return header.ByteSizeLong();
}

}  // namespace

std::vector<std::string> SplitSnapshot(const v1::Snapshot& snapshot, const std::string& id,
                                       size_t max_bytes) {
  const size_t overhead = PageOverhead(snapshot, id);
  const size_t budget = max_bytes > overhead ? max_bytes - overhead : 0;
  // Where each page's sockets start; a socket costs its bytes, a tag and a
  // length (at most 5 bytes: a socket is under 4 GiB).
  std::vector<int> starts = {0};
  size_t used = 0;
  for (int i = 0; i < snapshot.sockets_size(); ++i) {
    const size_t cost = snapshot.sockets(i).ByteSizeLong() + 6;
    if (used + cost > budget && i > starts.back()) {
      starts.push_back(i);
      used = 0;
    }
    used += cost;
  }
  starts.push_back(snapshot.sockets_size());

  const uint32_t page_count = static_cast<uint32_t>(starts.size() - 1);
  std::vector<std::string> pages;
  pages.reserve(page_count);
  for (uint32_t page = 0; page < page_count; ++page) {
    v1::Snapshot out;
    out.set_edge_id(snapshot.edge_id());
    out.set_incarnation(snapshot.incarnation());
    out.set_seq(snapshot.seq());
    out.set_snapshot_id(id);
    out.set_page(page);
    out.set_page_count(page_count);
    if (page == 0 && snapshot.has_heartbeat()) *out.mutable_heartbeat() = snapshot.heartbeat();
    out.mutable_sockets()->Reserve(starts[page + 1] - starts[page]);
    for (int i = starts[page]; i < starts[page + 1]; ++i) {
      *out.add_sockets() = snapshot.sockets(i);
    }
    pages.push_back(out.SerializeAsString());
  }
  return pages;
}

std::string GonePage(const std::string& edge_id, const std::string& incarnation,
                     std::string_view id) {
  v1::Snapshot gone;
  gone.set_edge_id(edge_id);
  gone.set_incarnation(incarnation);
  gone.set_snapshot_id(std::string(id));
  return gone.SerializeAsString();
}

void SnapshotPageCache::Keep(std::string id, std::vector<std::string> pages,
                             Clock::time_point now) {
  std::lock_guard lock(mu_);
  ExpireLocked(now);
  if (kept_.size() >= kMaxKept) kept_.pop_front();
  kept_.push_back({std::move(id), std::move(pages), now});
}

std::optional<std::string> SnapshotPageCache::Page(std::string_view id, uint32_t page,
                                                   Clock::time_point now) {
  std::lock_guard lock(mu_);
  ExpireLocked(now);
  auto it = std::find_if(kept_.begin(), kept_.end(), [&](const Kept& k) { return k.id == id; });
  if (it == kept_.end() || page >= it->pages.size()) return std::nullopt;
  if (page + 1 < it->pages.size()) return it->pages[page];
  std::string last = std::move(it->pages[page]);
  kept_.erase(it);  // served whole: a broker that lost the last page starts over
  return last;
}

size_t SnapshotPageCache::size() const {
  std::lock_guard lock(mu_);
  return kept_.size();
}

void SnapshotPageCache::ExpireLocked(Clock::time_point now) {
  while (!kept_.empty() && now - kept_.front().at > kKeepFor) kept_.pop_front();
}

}  // namespace switchboard::cluster
