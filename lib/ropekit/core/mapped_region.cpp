#include "ropekit/core/mapped_region.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ropekit/core/error.hpp"

namespace ropekit {

MappedRegion::MappedRegion(int fd, const std::string& path, std::uint64_t offset, std::size_t size)
    : size_(size) {
    if (size == 0) return;
    const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t start = offset / page * page;
    mapped_ = static_cast<std::size_t>(offset - start) + size;
    base_ = ::mmap(nullptr, mapped_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd,
                   static_cast<off_t>(start));
    if (base_ == MAP_FAILED) {
        base_ = nullptr;
        throw data_error(path, "", std::string("cannot map: ") + std::strerror(errno));
    }
    data_ = static_cast<const unsigned char*>(base_) + (offset - start);
}

MappedRegion::~MappedRegion() {
    if (base_) ::munmap(base_, mapped_);
}

}  // namespace ropekit
