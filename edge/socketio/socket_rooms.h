#pragma once

#include <cstddef>
#include <iterator>
#include <string>
#include <vector>

namespace switchboard::sio {

// The rooms a socket is in, as Socket.IO's socket.rooms lists them: its own
// id first (while it is in that room), then the rooms it joined, in joining
// order. A view over the socket's fields, so that the own-id room costs no
// copy of the id per socket. Valid while the socket's rooms do not change.
class SocketRooms {
 public:
  // own: the socket's id, nullptr when it is not in its own room.
  SocketRooms(const std::string* own, const std::vector<std::string>* joined)
      : own_(own), joined_(joined) {}

  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = std::string;
    using difference_type = std::ptrdiff_t;
    using pointer = const std::string*;
    using reference = const std::string&;

    iterator() = default;
    // Holds the fields, not the view: it outlives the temporary view.
    iterator(const std::string* own, const std::vector<std::string>* joined, size_t index)
        : own_(own), joined_(joined), index_(index) {}

    reference operator*() const { return At(own_, *joined_, index_); }
    pointer operator->() const { return &At(own_, *joined_, index_); }
    iterator& operator++() {
      ++index_;
      return *this;
    }
    iterator operator++(int) {
      iterator before = *this;
      ++index_;
      return before;
    }
    bool operator==(const iterator& other) const { return index_ == other.index_; }

   private:
    const std::string* own_ = nullptr;
    const std::vector<std::string>* joined_ = nullptr;
    size_t index_ = 0;
  };
  using const_iterator = iterator;
  using value_type = std::string;

  size_t size() const { return (own_ != nullptr ? 1 : 0) + joined_->size(); }
  bool empty() const { return size() == 0; }
  iterator begin() const { return iterator(own_, joined_, 0); }
  iterator end() const { return iterator(own_, joined_, size()); }
  const std::string& operator[](size_t index) const { return At(own_, *joined_, index); }

 private:
  static const std::string& At(const std::string* own, const std::vector<std::string>& joined,
                               size_t index) {
    if (own == nullptr) return joined[index];
    return index == 0 ? *own : joined[index - 1];
  }

  const std::string* own_;
  const std::vector<std::string>* joined_;
};

}  // namespace switchboard::sio
