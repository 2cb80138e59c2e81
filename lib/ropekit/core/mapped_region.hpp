#pragma once
// A byte range of a file mapped read-only and populated from the page cache up front
// (MAP_POPULATE: one kernel call instead of a fault per page), unmapped when destroyed. For
// readers that go over a large file one region at a time, so the resident set stays one region.
#include <cstddef>
#include <cstdint>
#include <string>

namespace ropekit {

class MappedRegion {
  public:
    // Bytes [offset, offset + size) of the file open as `fd` (read-only); `path` for messages.
    // data_error if the mapping fails.
    MappedRegion(int fd, const std::string& path, std::uint64_t offset, std::size_t size);
    MappedRegion(const MappedRegion&) = delete;
    MappedRegion& operator=(const MappedRegion&) = delete;
    ~MappedRegion();

    const unsigned char* data() const { return data_; }
    std::size_t size() const { return size_; }

  private:
    void* base_ = nullptr;  // page-aligned start of the mapping
    std::size_t mapped_ = 0;
    const unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace ropekit
