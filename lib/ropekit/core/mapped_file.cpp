#include "ropekit/core/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "ropekit/core/error.hpp"

namespace ropekit {

MappedFile MappedFile::open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw data_error(path, "", std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw data_error(path, "", "expected a regular file");
    }
    MappedFile file;
    file.path_ = path;
    file.size_ = static_cast<std::size_t>(st.st_size);
    if (file.size_ > 0) {
        void* p = mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            const int err = errno;
            ::close(fd);
            throw data_error(path, "", std::string("cannot map: ") + std::strerror(err));
        }
        file.data_ = static_cast<const unsigned char*>(p);
    }
    ::close(fd);
    return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
    if (this != &other) {
        release();
        path_ = std::move(other.path_);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

MappedFile::~MappedFile() {
    release();
}

void MappedFile::release() {
    if (data_) munmap(const_cast<unsigned char*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
}

std::uint64_t kernel_copy(int in_fd, std::uint64_t in_offset, int out_fd, std::uint64_t size) {
    auto offset = static_cast<off_t>(in_offset);
    std::uint64_t copied = 0;
    while (copied < size) {
        const auto piece =
            static_cast<std::size_t>(std::min<std::uint64_t>(size - copied, 1u << 30));
        const ssize_t n = ::copy_file_range(in_fd, &offset, out_fd, nullptr, piece, 0);
        if (n <= 0) break;  // EXDEV, ENOSYS, EOPNOTSUPP, EINVAL ...: the caller writes the rest
        copied += static_cast<std::uint64_t>(n);
    }
    return copied;
}

ReadOnlyFd::ReadOnlyFd(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw data_error(path, "", std::string("cannot open: ") + std::strerror(errno));
}

ReadOnlyFd::~ReadOnlyFd() {
    ::close(fd_);
}

bool copy_region(std::FILE* out, int source_fd, std::uint64_t source_offset,
                 const unsigned char* mapped, std::size_t size,
                 const std::function<void(const unsigned char*, std::size_t)>& put,
                 const std::function<void(std::size_t)>& counted) {
    std::size_t copied = 0;
    // The stdio buffer goes out first, so the kernel appends at the true end of the file; if
    // that fails, the streamed path below reports the error.
    if (size > 0 && std::fflush(out) == 0) {
        copied = static_cast<std::size_t>(kernel_copy(source_fd, source_offset, fileno(out), size));
        // stdio must continue after what the kernel wrote.
        if (std::fseek(out, 0, SEEK_END) != 0) return false;
        if (counted && copied > 0) counted(copied);
    }
    stream_mapped(mapped + copied, size - copied, put);
    return true;
}

void release_mapped_pages(const unsigned char* data, std::size_t size) {
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = (reinterpret_cast<std::uintptr_t>(data) + page - 1) / page * page;
    const auto end = reinterpret_cast<std::uintptr_t>(data + size) / page * page;
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void stream_mapped(const unsigned char* data, std::size_t size,
                   const std::function<void(const unsigned char*, std::size_t)>& sink) {
    constexpr std::size_t kPiece = std::size_t{64} << 20;
    for (std::size_t done = 0; done < size;) {
        const std::size_t n = std::min(kPiece, size - done);
        sink(data + done, n);
        release_mapped_pages(data + done, n);
        done += n;
    }
}

}  // namespace ropekit
