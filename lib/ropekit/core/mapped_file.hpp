#pragma once
// A whole file mapped read-only into memory, for checkpoints that are read in place.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace ropekit {

class MappedFile {
  public:
    // Throws data_error naming the file if it is missing, a directory or unreadable.
    static MappedFile open(const std::string& path);
    MappedFile(MappedFile&& other) noexcept;
    MappedFile& operator=(MappedFile&& other) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile();

    const unsigned char* data() const { return data_; }
    std::size_t size() const { return size_; }
    const std::string& path() const { return path_; }

  private:
    MappedFile() = default;
    void release();
    std::string path_;
    const unsigned char* data_ = nullptr;
    std::size_t size_ = 0;
};

// Drops the whole pages inside [data, data + size) from this process (MADV_DONTNEED): they stay
// in the page cache, and reading them again maps them back. Pages shared with the bytes before
// or after are kept. Only for read-only file mappings: on anonymous memory MADV_DONTNEED would
// discard the data.
void release_mapped_pages(const unsigned char* data, std::size_t size);

// Streams `size` bytes of a mapping to `sink` in 64 MiB pieces and releases each piece's pages
// once written (release_mapped_pages), so copying a multi-gigabyte tensor out of a mapping keeps
// the resident set small.
void stream_mapped(const unsigned char* data, std::size_t size,
                   const std::function<void(const unsigned char*, std::size_t)>& sink);

// Copies up to `size` bytes from offset `in_offset` of `in_fd` to the current offset of `out_fd`
// inside the kernel (copy_file_range: no user-space copy, shared extents where the file system
// can). Returns how many bytes were copied; fewer than `size` when the kernel cannot do it
// (other file systems, old kernels) or fails, and the caller writes the rest itself.
std::uint64_t kernel_copy(int in_fd, std::uint64_t in_offset, int out_fd, std::uint64_t size);

// A file opened read-only for kernel_copy; data_error naming it if it cannot be opened.
class ReadOnlyFd {
  public:
    explicit ReadOnlyFd(const std::string& path);
    ReadOnlyFd(const ReadOnlyFd&) = delete;
    ReadOnlyFd& operator=(const ReadOnlyFd&) = delete;
    ~ReadOnlyFd();
    int get() const { return fd_; }

  private:
    int fd_ = -1;
};

// Appends `size` bytes to the stdio stream `out`, which is positioned at its end: the bytes at
// `source_offset` of `source_fd` are copied in the kernel where it can, and whatever it does not
// copy is streamed from `mapped` (a read-only mapping of the same bytes) through `put`. `counted`
// is told how many bytes the kernel wrote, for writers that keep count. False if the stream could
// not be positioned after the kernel's copy (the output is then unusable).
[[nodiscard]] bool copy_region(std::FILE* out, int source_fd, std::uint64_t source_offset,
                               const unsigned char* mapped, std::size_t size,
                               const std::function<void(const unsigned char*, std::size_t)>& put,
                               const std::function<void(std::size_t)>& counted = {});

}  // namespace ropekit
