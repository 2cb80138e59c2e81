#include "ropekit/formats/gguf.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/mapped_file.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/formats/ggml_types.hpp"

namespace ropekit {

namespace {

constexpr std::uint64_t kDefaultAlignment = 32;
constexpr std::uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

struct TypeTraits {
    const char* name;
    std::uint64_t block;  // elements per block
    std::uint64_t bytes;  // bytes per block
};

// ggml_type -> block layout (ggml-common.h block structs; QK_K = 256).
const std::map<std::uint32_t, TypeTraits>& type_table() {
    static const std::map<std::uint32_t, TypeTraits> table = {
        {0, {"F32", 1, 4}},         {1, {"F16", 1, 2}},         {2, {"Q4_0", 32, 18}},
        {3, {"Q4_1", 32, 20}},      {6, {"Q5_0", 32, 22}},      {7, {"Q5_1", 32, 24}},
        {8, {"Q8_0", 32, 34}},      {9, {"Q8_1", 32, 36}},      {10, {"Q2_K", 256, 84}},
        {11, {"Q3_K", 256, 110}},   {12, {"Q4_K", 256, 144}},   {13, {"Q5_K", 256, 176}},
        {14, {"Q6_K", 256, 210}},   {15, {"Q8_K", 256, 292}},   {16, {"IQ2_XXS", 256, 66}},
        {17, {"IQ2_XS", 256, 74}},  {18, {"IQ3_XXS", 256, 98}}, {19, {"IQ1_S", 256, 50}},
        {20, {"IQ4_NL", 32, 18}},   {21, {"IQ3_S", 256, 110}},  {22, {"IQ2_S", 256, 82}},
        {23, {"IQ4_XS", 256, 136}}, {24, {"I8", 1, 1}},         {25, {"I16", 1, 2}},
        {26, {"I32", 1, 4}},        {27, {"I64", 1, 8}},        {28, {"F64", 1, 8}},
        {29, {"IQ1_M", 256, 56}},   {30, {"BF16", 1, 2}},       {34, {"TQ1_0", 256, 54}},
        {35, {"TQ2_0", 256, 66}},   {39, {"MXFP4", 32, 17}}};
    return table;
}

std::size_t scalar_size(GgufType t) {
    switch (t) {
        case GgufType::u8:
        case GgufType::i8:
        case GgufType::boolean:
            return 1;
        case GgufType::u16:
        case GgufType::i16:
            return 2;
        case GgufType::u32:
        case GgufType::i32:
        case GgufType::f32:
            return 4;
        case GgufType::u64:
        case GgufType::i64:
        case GgufType::f64:
            return 8;
        default:
            return 0;
    }
}

std::uint64_t align_up(std::uint64_t x, std::uint64_t a) {
    return (x + a - 1) / a * a;
}

// A bounds-checked cursor over the mapped file; every overrun is a data error naming `where`.
class Cursor {
  public:
    Cursor(const std::uint8_t* data, std::uint64_t size, std::string path)
        : data_(data), size_(size), path_(std::move(path)) {}
    std::uint64_t pos() const { return pos_; }
    const std::uint8_t* at(std::uint64_t p) const { return data_ + p; }
    void need(std::uint64_t n, const std::string& where) const {
        if (n > size_ - pos_) {
            throw data_error(
                path_, where,
                fmt::format("truncated: needs {} bytes at offset {}, file has {}", n, pos_, size_));
        }
    }
    template <class T>
    T read(const std::string& where) {
        need(sizeof(T), where);
        T v;
        std::memcpy(&v, data_ + pos_, sizeof v);
        pos_ += sizeof v;
        return v;
    }
    std::string string(const std::string& where) {
        const auto n = read<std::uint64_t>(where);
        need(n, where);
        std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<std::size_t>(n));
        pos_ += n;
        return s;
    }
    void skip(std::uint64_t n, const std::string& where) {
        need(n, where);
        pos_ += n;
    }

  private:
    const std::uint8_t* data_;
    std::uint64_t size_;
    std::uint64_t pos_ = 0;
    std::string path_;
};

GgufType checked_type(std::uint32_t t, const std::string& path, const std::string& key) {
    if (t > 12) throw data_error(path, key, fmt::format("unknown value type {}", t));
    return static_cast<GgufType>(t);
}

// Skips one value of type t (validating nested lengths) and returns nothing; arrays recurse.
void skip_value(Cursor& c, GgufType t, const std::string& path, const std::string& key, int depth) {
    if (const std::size_t n = scalar_size(t)) {
        c.skip(n, key);
    } else if (t == GgufType::string) {
        c.skip(c.read<std::uint64_t>(key), key);
    } else {  // array
        if (depth > 8) throw data_error(path, key, "arrays nested too deeply");
        const GgufType element = checked_type(c.read<std::uint32_t>(key), path, key);
        const auto count = c.read<std::uint64_t>(key);
        if (const std::size_t width = scalar_size(element)) {
            if (count > UINT64_MAX / width) throw data_error(path, key, "array length overflows");
            c.skip(count * width, key);
        } else {
            for (std::uint64_t i = 0; i < count; ++i) skip_value(c, element, path, key, depth + 1);
        }
    }
}

template <class T>
T load(const std::uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

void put(std::FILE* f, const void* p, std::size_t n, const std::string& path) {
    if (n > 0 && std::fwrite(p, 1, n, f) != n)
        throw data_error(path, "", "write failed (disk full?)");
}
template <class T>
void put_scalar(std::FILE* f, T v, const std::string& path) {
    put(f, &v, sizeof v, path);
}
void put_string(std::FILE* f, const std::string& s, const std::string& path) {
    put_scalar<std::uint64_t>(f, s.size(), path);
    put(f, s.data(), s.size(), path);
}

}  // namespace

std::optional<std::uint64_t> ggml_type_bytes(std::uint32_t type, std::uint64_t elements) {
    const auto it = type_table().find(type);
    if (it == type_table().end() || elements % it->second.block != 0) return std::nullopt;
    const std::uint64_t blocks = elements / it->second.block;
    // Past 2^64 bytes the size would wrap to a small number that passes every range check.
    if (blocks > UINT64_MAX / it->second.bytes) return std::nullopt;
    return blocks * it->second.bytes;
}

std::string ggml_type_name(std::uint32_t type) {
    const auto it = type_table().find(type);
    return it == type_table().end() ? fmt::format("type {}", type) : it->second.name;
}

GgufValue GgufValue::u32(std::uint32_t v) {
    GgufValue out;
    out.type = GgufType::u32;
    out.raw.resize(4);
    std::memcpy(out.raw.data(), &v, 4);
    return out;
}

GgufValue GgufValue::f32(float v) {
    GgufValue out;
    out.type = GgufType::f32;
    out.raw.resize(4);
    std::memcpy(out.raw.data(), &v, 4);
    return out;
}

GgufValue GgufValue::text(const std::string& s) {
    GgufValue out;
    out.type = GgufType::string;
    const std::uint64_t n = s.size();
    out.raw.resize(8 + s.size());
    std::memcpy(out.raw.data(), &n, 8);
    std::memcpy(out.raw.data() + 8, s.data(), s.size());
    return out;
}

bool GgufValue::is_number() const {
    return scalar_size(type) != 0;
}

double GgufValue::as_double() const {
    const std::uint8_t* p = raw.data();
    switch (type) {
        case GgufType::u8:
            return load<std::uint8_t>(p);
        case GgufType::i8:
            return load<std::int8_t>(p);
        case GgufType::boolean:
            return load<std::uint8_t>(p) != 0;
        case GgufType::u16:
            return load<std::uint16_t>(p);
        case GgufType::i16:
            return load<std::int16_t>(p);
        case GgufType::u32:
            return load<std::uint32_t>(p);
        case GgufType::i32:
            return load<std::int32_t>(p);
        case GgufType::f32:
            return load<float>(p);
        case GgufType::u64:
            return static_cast<double>(load<std::uint64_t>(p));
        case GgufType::i64:
            return static_cast<double>(load<std::int64_t>(p));
        case GgufType::f64:
            return load<double>(p);
        default:
            throw std::logic_error("GGUF value is not a number");
    }
}

std::string GgufValue::as_string() const {
    if (type != GgufType::string) throw std::logic_error("GGUF value is not a string");
    return std::string(reinterpret_cast<const char*>(raw.data()) + 8, raw.size() - 8);
}

namespace {

// "GGUF", then a version this reader knows.
std::uint32_t read_version(Cursor& c, const MappedFile& map) {
    c.need(4, "");
    if (std::memcmp(map.data(), "GGUF", 4) != 0)
        throw data_error(map.path(), "", "not a GGUF file (no GGUF magic)");
    c.skip(4, "");
    const auto version = c.read<std::uint32_t>("version");
    if (version != 2 && version != 3) {
        throw data_error(
            map.path(), "version",
            fmt::format("GGUF version {} is not supported (expected 2 or 3, little-endian)",
                        version));
    }
    return version;
}

struct Counts {
    std::uint64_t tensors = 0, keys = 0;
};

Counts read_counts(Cursor& c, const MappedFile& map) {
    Counts n;
    n.tensors = c.read<std::uint64_t>("tensor_count");
    n.keys = c.read<std::uint64_t>("metadata_kv_count");
    // Every key-value needs at least 12 bytes and every tensor info at least 24.
    if (n.keys > map.size() / 12 || n.tensors > map.size() / 24) {
        throw data_error(map.path(), "",
                         fmt::format("{} tensors and {} keys cannot fit in {} bytes", n.tensors,
                                     n.keys, map.size()));
    }
    return n;
}

// Key-value #i: its key, type tag, and the value's exact bytes.
GgufKV read_kv(Cursor& c, std::uint64_t i, const std::string& path) {
    GgufKV kv;
    kv.key = c.string(fmt::format("key #{}", i));
    kv.value.type = checked_type(c.read<std::uint32_t>(kv.key), path, kv.key);
    const std::uint64_t start = c.pos();
    if (kv.value.type == GgufType::array) {
        kv.value.element_type = checked_type(load<std::uint32_t>(c.at(start)), path, kv.key);
    }
    skip_value(c, kv.value.type, path, kv.key, 0);
    if (kv.value.type == GgufType::array) kv.value.count = load<std::uint64_t>(c.at(start + 4));
    kv.value.raw.assign(c.at(start), c.at(c.pos()));
    return kv;
}

// general.alignment when given: a u32 power of two.
std::uint64_t read_alignment(const GgufValue* value, const std::string& path) {
    if (!value) return kDefaultAlignment;
    if (value->type != GgufType::u32) throw data_error(path, "general.alignment", "expected a u32");
    const auto alignment = static_cast<std::uint64_t>(value->as_double());
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        throw data_error(path, "general.alignment",
                         fmt::format("expected a power of two, got {}", alignment));
    }
    return alignment;
}

// Reads a tensor's dimensions into t.dims and returns its element count.
std::uint64_t read_dims(Cursor& c, GgufTensorInfo& t, const std::string& path) {
    const auto n_dims = c.read<std::uint32_t>(t.name);
    if (n_dims == 0 || n_dims > kMaxDims) {
        throw data_error(path, t.name, fmt::format("{} dimensions (expected 1 to 4)", n_dims));
    }
    std::uint64_t elements = 1;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
        const auto n = c.read<std::uint64_t>(t.name);
        if (n > INT64_MAX || (n != 0 && elements > static_cast<std::uint64_t>(INT64_MAX) / n)) {
            throw data_error(path, t.name, "dimensions overflow");
        }
        elements *= n;
        t.dims.push_back(n);
    }
    return elements;
}

// Why `elements` of ggml type `type` have no byte size.
std::string size_error(std::uint32_t type, std::uint64_t elements) {
    if (!type_table().count(type)) return fmt::format("unknown ggml type {}", type);
    if (elements % type_table().at(type).block != 0) {
        return fmt::format("{} elements are not whole {} blocks", elements, ggml_type_name(type));
    }
    return fmt::format("{} elements of {} need more than 2^64 bytes", elements,
                       ggml_type_name(type));
}

// Tensor info #i: name, dimensions, type (and so byte size), and an aligned offset.
GgufTensorInfo read_tensor_info(Cursor& c, std::uint64_t i, std::uint64_t alignment,
                                const std::string& path) {
    GgufTensorInfo t;
    t.name = c.string(fmt::format("tensor #{}", i));
    const std::uint64_t elements = read_dims(c, t, path);
    t.type = c.read<std::uint32_t>(t.name);
    const auto bytes = ggml_type_bytes(t.type, elements);
    if (!bytes) throw data_error(path, t.name, size_error(t.type, elements));
    t.byte_size = *bytes;
    t.offset = c.read<std::uint64_t>(t.name);
    if (t.offset % alignment != 0) {
        throw data_error(
            path, t.name,
            fmt::format("offset {} is not a multiple of the alignment {}", t.offset, alignment));
    }
    return t;
}

// Appends `item` and indexes it by `name`; false if the name was taken.
template <class T>
bool add_named(std::vector<T>& items, std::map<std::string, std::size_t>& index,
               const std::string& name, T item) {
    if (!index.emplace(name, items.size()).second) return false;
    items.push_back(std::move(item));
    return true;
}

// Every tensor's data lies inside the data section, without overlapping another's.
void check_tensor_data(const std::vector<GgufTensorInfo>& tensors, std::uint64_t data_size,
                       const std::string& path) {
    std::vector<const GgufTensorInfo*> order;
    for (const auto& t : tensors) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    std::uint64_t end = 0;
    for (const GgufTensorInfo* t : order) {
        if (t->offset < end) throw data_error(path, t->name, "data overlaps the previous tensor");
        if (t->offset > data_size || t->byte_size > data_size - t->offset) {
            throw data_error(
                path, t->name,
                fmt::format("data [{}, {}) runs past the end of the file (data section {} bytes)",
                            t->offset, t->offset + t->byte_size, data_size));
        }
        end = t->offset + t->byte_size;
    }
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
    GgufFile f(MappedFile::open(path));
    Cursor c(f.map_.data(), f.map_.size(), path);
    f.version_ = read_version(c, f.map_);
    const Counts counts = read_counts(c, f.map_);
    for (std::uint64_t i = 0; i < counts.keys; ++i) {
        GgufKV kv = read_kv(c, i, path);
        const std::string key = kv.key;
        if (!add_named(f.metadata_, f.key_index_, key, std::move(kv))) {
            throw data_error(path, key, "key appears twice");
        }
    }
    f.alignment_ = read_alignment(f.find("general.alignment"), path);
    for (std::uint64_t i = 0; i < counts.tensors; ++i) {
        GgufTensorInfo t = read_tensor_info(c, i, f.alignment_, path);
        const std::string name = t.name;
        if (!add_named(f.tensors_, f.tensor_index_, name, std::move(t))) {
            throw data_error(path, name, "tensor name appears twice");
        }
    }
    f.data_start_ = align_up(c.pos(), f.alignment_);
    const std::uint64_t size = f.map_.size();
    check_tensor_data(f.tensors_, f.data_start_ <= size ? size - f.data_start_ : 0, path);
    return f;
}

const std::string& GgufFile::path() const {
    return map_.path();
}
std::uint32_t GgufFile::version() const {
    return version_;
}
std::uint64_t GgufFile::alignment() const {
    return alignment_;
}
const std::vector<GgufKV>& GgufFile::metadata() const {
    return metadata_;
}
const std::vector<GgufTensorInfo>& GgufFile::tensors() const {
    return tensors_;
}

const GgufValue* GgufFile::find(const std::string& key) const {
    const auto it = key_index_.find(key);
    return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const std::uint8_t* GgufFile::bytes(const GgufTensorInfo& t) const {
    return map_.data() + data_start_ + t.offset;
}

std::uint64_t GgufFile::file_offset(const GgufTensorInfo& t) const {
    return data_start_ + t.offset;
}

std::vector<float> GgufFile::read_float(const std::string& name) const {
    const GgufTensorInfo* t = find_tensor(name);
    if (!t) throw data_error(path(), name, "no such tensor");
    require_dequantizable(*this, *t);
    std::vector<float> out(static_cast<std::size_t>(gguf_row_count(*t) * t->dims[0]));
    dequantize_rows(*this, *t, 0, gguf_row_count(*t), out.data());
    return out;
}

namespace {

// Read-only descriptors of the files tensors are copied from, opened once each.
class SourceFiles {
  public:
    int fd(const std::string& path) {
        auto it = files_.find(path);
        if (it == files_.end()) it = files_.emplace(path, std::make_unique<ReadOnlyFd>(path)).first;
        return it->second->get();
    }

  private:
    std::map<std::string, std::unique_ptr<ReadOnlyFd>> files_;
};

}  // namespace

void write_gguf(const std::string& path, std::uint32_t version, const std::vector<GgufKV>& metadata,
                const std::vector<GgufOutputTensor>& tensors, std::uint64_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        throw data_error(path, "general.alignment", "expected a power of two");
    }
    std::set<std::string> keys, names;
    for (const GgufKV& kv : metadata) {
        if (!keys.insert(kv.key).second) throw data_error(path, kv.key, "key given twice");
        if (kv.key == "general.alignment" &&
            (kv.value.type != GgufType::u32 ||
             kv.value.as_double() != static_cast<double>(alignment))) {
            throw data_error(path, kv.key, "does not match the alignment used for writing");
        }
    }
    std::vector<std::uint64_t> offsets;
    std::uint64_t cursor = 0;
    for (const GgufOutputTensor& t : tensors) {
        if (!names.insert(t.name).second) throw data_error(path, t.name, "tensor given twice");
        std::uint64_t elements = 1;
        for (auto d : t.dims) elements *= d;
        if (ggml_type_bytes(t.type, elements) != t.byte_size) {
            throw data_error(path, t.name, "byte size does not match dims and type");
        }
        cursor = align_up(cursor, alignment);
        offsets.push_back(cursor);
        cursor += t.byte_size;
    }

    std::FILE* f = open_for_writing(path);
    if (!f) throw data_error(path, "", std::string("cannot write: ") + std::strerror(errno));
    struct Closer {
        std::FILE* f;
        ~Closer() {
            if (f) std::fclose(f);
        }
    } closer{f};
    put(f, "GGUF", 4, path);
    put_scalar<std::uint32_t>(f, version, path);
    put_scalar<std::uint64_t>(f, tensors.size(), path);
    put_scalar<std::uint64_t>(f, metadata.size(), path);
    std::uint64_t written = 24;
    for (const GgufKV& kv : metadata) {
        put_string(f, kv.key, path);
        put_scalar<std::uint32_t>(f, static_cast<std::uint32_t>(kv.value.type), path);
        put(f, kv.value.raw.data(), kv.value.raw.size(), path);
        written += 8 + kv.key.size() + 4 + kv.value.raw.size();
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const GgufOutputTensor& t = tensors[i];
        put_string(f, t.name, path);
        put_scalar<std::uint32_t>(f, static_cast<std::uint32_t>(t.dims.size()), path);
        for (auto d : t.dims) put_scalar<std::uint64_t>(f, d, path);
        put_scalar<std::uint32_t>(f, t.type, path);
        put_scalar<std::uint64_t>(f, offsets[i], path);
        written += 8 + t.name.size() + 4 + 8 * t.dims.size() + 4 + 8;
    }
    const std::vector<std::uint8_t> zeros(static_cast<std::size_t>(alignment), 0);
    put(f, zeros.data(), static_cast<std::size_t>(align_up(written, alignment) - written), path);
    std::uint64_t data_pos = 0;
    SourceFiles sources;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        const GgufOutputTensor& t = tensors[i];
        put(f, zeros.data(), static_cast<std::size_t>(offsets[i] - data_pos), path);
        const auto size = static_cast<std::size_t>(t.byte_size);
        auto write = [&](const unsigned char* p, std::size_t n) { put(f, p, n, path); };
        if (t.from_mapping && !t.source_file.empty()) {
            if (!copy_region(f, sources.fd(t.source_file), t.source_offset, t.data, size, write))
                throw data_error(path, t.name, "write failed (cannot seek the output)");
        } else if (t.from_mapping) {
            stream_mapped(t.data, size, write);
        } else {
            put(f, t.data, size, path);
        }
        data_pos = offsets[i] + t.byte_size;
    }
    closer.f = nullptr;
    if (std::fclose(f) != 0) throw data_error(path, "", "write failed (disk full?)");
}

bool starts_as_gguf(const std::string& path) {
    char magic[4] = {};
    std::ifstream(path, std::ios::binary).read(magic, sizeof magic);
    return std::memcmp(magic, "GGUF", sizeof magic) == 0;
}

}  // namespace ropekit
