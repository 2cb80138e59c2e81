#pragma once
// safetensors files (Hugging Face checkpoints), read through a read-only memory map and written
// as a stream (docs/formats.md, "safetensors"):
//   8-byte little-endian header length N, N bytes of JSON header (padded with spaces),
//   then the data section. The header maps tensor names to {dtype, shape, data_offsets} with
//   offsets relative to the data section, plus an optional "__metadata__" string map.
// The reader validates strictly (as the reference Rust implementation does): the header length
// must fit in the file and below 100 MB, the header must be a JSON object without duplicate
// names, every dtype known, every byte size equal to prod(shape) * dtype size, and the offsets
// must tile the data section exactly (no gap, no overlap, nothing past the end).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ropekit/core/mapped_file.hpp"
#include "ropekit/core/tensor.hpp"

namespace ropekit {

// Size in bytes of one element of a safetensors dtype ("F16", "BF16", "F32", "I64", ...), or 0
// if the dtype is not one the format defines.
std::size_t safetensors_dtype_size(const std::string& dtype);

struct SafetensorsTensor {
    std::string name;
    std::string dtype;  // as written: "F16", "BF16", "F32", "F64", "I64", ...
    Shape shape;
    std::uint64_t begin = 0, end = 0;  // data_offsets, relative to the data section
    std::uint64_t byte_size() const { return end - begin; }
};

// Holds its mapping and what open() read from it by value, as GgufFile does: movable (pointers
// into tensors() stay valid), not copyable.
class SafetensorsFile {
  public:
    // Maps the file and validates its header. Throws data_error(path, tensor or key, what).
    static SafetensorsFile open(const std::string& path);

    const std::string& path() const;
    // Tensors in data order (ascending offsets).
    const std::vector<SafetensorsTensor>& tensors() const;
    const SafetensorsTensor* find(const std::string& name) const;  // nullptr if absent
    const SafetensorsTensor& at(const std::string& name) const;    // data_error if absent
    const std::map<std::string, std::string>& metadata() const;
    std::uint64_t header_size() const;  // N
    std::uint64_t file_size() const;

    // Zero-copy view of a tensor's bytes (little-endian, not necessarily aligned).
    const std::uint8_t* bytes(const SafetensorsTensor& tensor) const;
    std::uint64_t file_offset(const SafetensorsTensor& tensor) const;  // of its first byte

    // Converts floating (F16, BF16, F32, F64) and integer/bool tensors to float or double.
    // Throws data_error for types without a defined conversion (F8 variants).
    Tensor<float> read_float(const std::string& name) const;
    Tensor<double> read_double(const std::string& name) const;

  private:
    explicit SafetensorsFile(MappedFile map) : map_(std::move(map)) {}
    std::uint64_t data_start() const { return 8 + header_size_; }
    MappedFile map_;
    std::uint64_t header_size_ = 0;
    std::vector<SafetensorsTensor> tensors_;
    std::map<std::string, std::size_t> by_name_;  // name -> index in tensors_
    std::map<std::string, std::string> metadata_;
};

struct SafetensorsSpec {
    std::string name;
    std::string dtype;
    Shape shape;
};

// Writes a safetensors file to `path` directly (callers that need atomicity write into a
// temporary file or directory: see write_safetensors and output_path.hpp). The header is
// written at once: tensors get contiguous offsets in the order given, "__metadata__" is
// {"format": "pt"} plus `metadata`, and the header is padded with spaces to a multiple of 8.
// Then append() each tensor's bytes, in order, in pieces of any size; finish() checks every
// byte arrived and closes. Nothing is buffered beyond the stdio buffer, so copying from a
// SafetensorsFile streams.
class SafetensorsWriter {
  public:
    SafetensorsWriter(std::string path, std::vector<SafetensorsSpec> specs,
                      const std::map<std::string, std::string>& metadata = {});
    SafetensorsWriter(const SafetensorsWriter&) = delete;
    SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
    ~SafetensorsWriter();

    void append(const void* data, std::size_t size);
    // Appends bytes that lie at `offset` of the file open as `source_fd`, which `mapped` (a
    // read-only file mapping) also shows: copied in the kernel where possible (copy_region).
    void append_copy(int source_fd, std::uint64_t offset, const unsigned char* mapped,
                     std::size_t size);
    void finish();

  private:
    std::string path_;
    std::FILE* file_ = nullptr;
    std::uint64_t expected_ = 0, written_ = 0;
};

// The whole header text a writer produces for `specs` (exposed for tests).
std::string safetensors_header(const std::vector<SafetensorsSpec>& specs,
                               const std::map<std::string, std::string>& metadata = {});

// Writes a complete file atomically (temporary file beside `path`, renamed on success),
// refusing to overwrite an input, or an existing file without force. `data[i]` holds the
// bytes of specs[i].
void write_safetensors(const std::string& path, const std::vector<SafetensorsSpec>& specs,
                       const std::vector<const void*>& data, bool force,
                       const std::vector<std::string>& inputs);

// model.safetensors.index.json: {"metadata": {"total_size": N}, "weight_map": {tensor: shard}}.
struct SafetensorsIndex {
    std::string path;
    std::map<std::string, std::string> weight_map;
    std::vector<std::string> shards;  // distinct shard file names, in first-use order
};
// Validates the index: weight_map an object of strings, shard names plain file names (no
// directory parts, so an index cannot reach outside its directory).
SafetensorsIndex read_safetensors_index(const std::string& path);

}  // namespace ropekit
