#pragma once
// GGUF files (llama.cpp), versions 2 and 3, little-endian (docs/formats.md, "GGUF"):
//   "GGUF", u32 version, u64 tensor count, u64 key-value count,
//   key-values (string key, u32 type, value; arrays are u32 element type, u64 count, elements),
//   tensor infos (string name, u32 n_dims, u64 dims[n_dims] innermost first, u32 ggml type,
//   u64 offset relative to the data section), padding to general.alignment (default 32),
//   then the data section.
// The reader maps the file and validates it (bounds of every string and array, known tensor
// types, aligned, in-range, non-overlapping tensor data, no duplicate keys or names). Metadata
// values keep their exact bytes, so a copy re-emits every key unchanged; tensor data is never
// copied into memory: the writer streams it from the source mapping.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ropekit/core/mapped_file.hpp"
#include "ropekit/core/tensor.hpp"

namespace ropekit {

// True if `path` starts with the GGUF magic. (A llama2.c checkpoint starts with an int32 dim,
// which never spells it: it would be above 1.1e9; a GGUF file carries its own vocabulary.)
bool starts_as_gguf(const std::string& path);

enum class GgufType : std::uint32_t {
    u8 = 0,
    i8 = 1,
    u16 = 2,
    i16 = 3,
    u32 = 4,
    i32 = 5,
    f32 = 6,
    boolean = 7,
    string = 8,
    array = 9,
    u64 = 10,
    i64 = 11,
    f64 = 12
};

// One metadata value, stored as its exact serialized bytes (without the type tag).
struct GgufValue {
    GgufType type = GgufType::u32;
    GgufType element_type = GgufType::u32;  // arrays only
    std::uint64_t count = 0;                // arrays only
    std::vector<std::uint8_t> raw;

    static GgufValue u32(std::uint32_t v);
    static GgufValue f32(float v);
    static GgufValue text(const std::string& s);

    bool is_number() const;         // any integer, float or bool scalar
    double as_double() const;       // numeric scalars; throws std::logic_error otherwise
    std::string as_string() const;  // string scalars
};

struct GgufKV {
    std::string key;
    GgufValue value;
};

struct GgufTensorInfo {
    std::string name;
    std::vector<std::uint64_t> dims;  // ggml order: dims[0] is the innermost (contiguous) axis
    std::uint32_t type = 0;           // ggml_type: 0 F32, 1 F16, 30 BF16, 28 F64, quantized ...
    std::uint64_t offset = 0;         // relative to the data section
    std::uint64_t byte_size = 0;
};

// Name ("F32", "Q4_K", ...) and byte size of n elements of a ggml type; nullopt if unknown or
// n is not a whole number of blocks.
std::optional<std::uint64_t> ggml_type_bytes(std::uint32_t type, std::uint64_t elements);
std::string ggml_type_name(std::uint32_t type);

// Holds its mapping and what open() read from it by value, as SafetensorsFile does: movable
// (pointers into tensors() and metadata() stay valid), not copyable.
class GgufFile {
  public:
    static GgufFile open(const std::string& path);  // data_error(path, key/tensor, what)

    const std::string& path() const;
    std::uint32_t version() const;
    std::uint64_t alignment() const;
    const std::vector<GgufKV>& metadata() const;  // in file order
    const GgufValue* find(const std::string& key) const;
    const std::vector<GgufTensorInfo>& tensors() const;  // in file order
    const GgufTensorInfo* find_tensor(const std::string& name) const;
    const std::uint8_t* bytes(const GgufTensorInfo& tensor) const;  // zero-copy
    std::uint64_t file_offset(const GgufTensorInfo& tensor) const;  // of its first byte
    // A whole tensor as float, in every type ggml_types.hpp converts (data_error for others).
    std::vector<float> read_float(const std::string& name) const;

  private:
    explicit GgufFile(MappedFile map) : map_(std::move(map)) {}
    MappedFile map_;
    std::uint32_t version_ = 0;
    std::uint64_t alignment_ = 0;   // general.alignment (32 when absent)
    std::uint64_t data_start_ = 0;  // file offset of the data section
    std::vector<GgufKV> metadata_;
    std::map<std::string, std::size_t> key_index_;  // key -> index in metadata_
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, std::size_t> tensor_index_;  // name -> index in tensors_
};

struct GgufOutputTensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint32_t type = 0;
    const std::uint8_t* data = nullptr;  // byte_size bytes, e.g. inside a GgufFile mapping
    std::uint64_t byte_size = 0;
    bool from_mapping = false;  // data lies in a read-only file mapping: stream_mapped() it
    // With from_mapping: the file and offset `data` maps, so the bytes are copied in the kernel
    // (copy_region), falling back to the mapping for whatever the kernel does not copy.
    std::string source_file{};
    std::uint64_t source_offset = 0;
};

// Writes a GGUF file to `path` (callers make it atomic: temporary file, then commit_temp).
// Tensor data is laid out in the given order, each at the next multiple of `alignment`, and
// streamed from the data pointers. general.alignment, if present in `metadata`, must match.
void write_gguf(const std::string& path, std::uint32_t version, const std::vector<GgufKV>& metadata,
                const std::vector<GgufOutputTensor>& tensors, std::uint64_t alignment);

}  // namespace ropekit
