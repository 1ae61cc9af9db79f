#include "edge/recovery/memory_log.h"

namespace switchboard::recovery {

namespace {

// Bytes an entry holds: its packet, its target's names, and the bookkeeping.
size_t EntryBytes(const sio::Delivery& delivery) {
  size_t bytes = sizeof(LogEntry) + sizeof(sio::Delivery);
  for (const auto& frame : delivery.frames) bytes += frame.bytes->size() + sizeof(eio::Frame);
  for (const auto* names :
       {&delivery.target.rooms, &delivery.target.user_ids, &delivery.target.except_rooms}) {
    for (const auto& name : *names) bytes += name.size() + sizeof(std::string);
  }
  return bytes;
}

}  // namespace

absl::StatusOr<LogEntryPtr> MemoryLog::Append(sio::BroadcastTarget target, const Encode& encode,
                                              uint64_t given) {
  return AppendAt(std::move(target), encode, Clock::now(), given);
}

void MemoryLog::StartAfter(uint64_t last) {
  std::lock_guard lock(mu_);
  entries_.clear();
  bytes_ = 0;
  last_offset_ = last;
  trimmed_through_ = last;
}

absl::StatusOr<LogEntryPtr> MemoryLog::AppendAtForTest(sio::BroadcastTarget target,
                                                       const Encode& encode,
                                                       Clock::time_point now) {
  return AppendAt(std::move(target), encode, now);
}

absl::StatusOr<LogEntryPtr> MemoryLog::AppendAt(sio::BroadcastTarget target, const Encode& encode,
                                                Clock::time_point now, uint64_t given) {
  std::lock_guard lock(mu_);
  uint64_t offset = last_offset_ + 1;
  if (given != 0) {
    if (given <= last_offset_) {
      return absl::InvalidArgumentError("offset not after the log's last one");
    }
    if (given != offset) {  // a gap: offsets stay contiguous from here on
      entries_.clear();
      bytes_ = 0;
      trimmed_through_ = given - 1;
    }
    offset = given;
  }
  auto delivery = std::make_shared<sio::Delivery>();
  delivery->target = std::move(target);
  delivery->frames = encode(offset);
  delivery->offset = offset;
  auto entry = std::make_shared<LogEntry>();
  entry->offset = offset;
  entry->bytes = EntryBytes(*delivery);
  entry->delivery = std::move(delivery);
  entry->appended = now;
  last_offset_ = offset;
  bytes_ += entry->bytes;
  entries_.push_back(entry);
  Trim(now);
  return entry;
}

void MemoryLog::TrimForTest(Clock::time_point now) {
  std::lock_guard lock(mu_);
  Trim(now);
}

void MemoryLog::Trim(Clock::time_point now) {
  // The newest entry stays whatever its size: it is being delivered.
  while (entries_.size() > 1 &&
         (bytes_ > max_bytes_ || now - entries_.front()->appended > max_age_)) {
    bytes_ -= entries_.front()->bytes;
    trimmed_through_ = entries_.front()->offset;
    entries_.pop_front();
  }
  if (entries_.size() == 1 && now - entries_.front()->appended > max_age_) {
    bytes_ = 0;
    trimmed_through_ = entries_.front()->offset;
    entries_.pop_front();
  }
}

void MemoryLog::ReadAfter(uint64_t after, const Match& match, ReadDone done) {
  std::vector<LogEntryPtr> out;
  {
    std::lock_guard lock(mu_);
    if (after > last_offset_) {
      return done(absl::InvalidArgumentError("offset beyond the log's end"));
    }
    if (after < trimmed_through_) {
      return done(absl::OutOfRangeError("offset older than the log's first entry"));
    }
    if (!entries_.empty()) {
      // Contiguous offsets: the first entry after `after` by index.
      uint64_t first = entries_.front()->offset;
      size_t start = after + 1 > first ? after + 1 - first : 0;
      for (size_t i = start; i < entries_.size(); ++i) {
        if (match(entries_[i]->delivery->target)) out.push_back(entries_[i]);
      }
    }
  }
  done(std::move(out));
}

LogStats MemoryLog::Stats() const {
  std::lock_guard lock(mu_);
  LogStats stats;
  stats.entries = entries_.size();
  stats.bytes = bytes_;
  stats.first_offset = entries_.empty() ? 0 : entries_.front()->offset;
  stats.last_offset = last_offset_;
  return stats;
}

}  // namespace switchboard::recovery
