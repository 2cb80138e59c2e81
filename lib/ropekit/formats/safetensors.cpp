#include "ropekit/formats/safetensors.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ropekit/core/dtype.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/json.hpp"
#include "ropekit/core/mapped_file.hpp"
#include "ropekit/core/output_path.hpp"

namespace ropekit {

using Json = nlohmann::ordered_json;

namespace {

// The reference implementation refuses headers above 100 MB; so do we (a corrupt length would
// otherwise make us parse gigabytes of tensor data as JSON).
constexpr std::uint64_t kMaxHeader = 100'000'000;

template <class T>
T load(const std::uint8_t* p) {
    T value;
    std::memcpy(&value, p, sizeof value);  // unaligned, little-endian host
    return value;
}

std::uint64_t checked_bytes(const Shape& shape, std::size_t element, const std::string& path,
                            const std::string& name) {
    std::uint64_t n = element;
    for (std::size_t d : shape) {
        if (d != 0 && n > std::numeric_limits<std::uint64_t>::max() / d) {
            throw data_error(path, name, "shape " + shape_string(shape) + " overflows");
        }
        n *= d;
    }
    return n;
}

std::uint64_t json_u64(const Json& v, const std::string& path, const std::string& name,
                       const std::string& what) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0)) {
        throw data_error(path, name,
                         fmt::format("{} must be non-negative integers, got {}", what, v.dump()));
    }
    return v.get<std::uint64_t>();
}

SafetensorsTensor parse_entry(const std::string& name, const Json& v, const std::string& path) {
    if (!v.is_object()) throw data_error(path, name, "expected {dtype, shape, data_offsets}");
    SafetensorsTensor t;
    t.name = name;
    if (!v.contains("dtype") || !v.at("dtype").is_string()) {
        throw data_error(path, name, "missing dtype");
    }
    t.dtype = v.at("dtype").get<std::string>();
    const std::size_t element = safetensors_dtype_size(t.dtype);
    if (element == 0) throw data_error(path, name, "unknown dtype '" + t.dtype + "'");
    if (!v.contains("shape") || !v.at("shape").is_array()) {
        throw data_error(path, name, "missing shape (expected a list of integers)");
    }
    for (const Json& d : v.at("shape")) {
        t.shape.push_back(static_cast<std::size_t>(json_u64(d, path, name, "shape entries")));
    }
    if (!v.contains("data_offsets") || !v.at("data_offsets").is_array() ||
        v.at("data_offsets").size() != 2) {
        throw data_error(path, name, "missing data_offsets (expected [begin, end])");
    }
    t.begin = json_u64(v.at("data_offsets")[0], path, name, "data_offsets");
    t.end = json_u64(v.at("data_offsets")[1], path, name, "data_offsets");
    if (t.end < t.begin) {
        throw data_error(
            path, name, fmt::format("data_offsets [{}, {}] end before they begin", t.begin, t.end));
    }
    const std::uint64_t bytes = checked_bytes(t.shape, element, path, name);
    if (bytes != t.byte_size()) {
        throw data_error(
            path, name,
            fmt::format("{} {} needs {} bytes but data_offsets [{}, {}] hold {}", t.dtype,
                        shape_string(t.shape), bytes, t.begin, t.end, t.byte_size()));
    }
    return t;
}

// The 8-byte header length N: it must leave room in the file and stay below the limit.
std::uint64_t read_header_length(const MappedFile& map) {
    const std::uint64_t size = map.size();
    if (size < 8) {
        throw data_error(map.path(), "",
                         fmt::format("{} bytes: too short for a safetensors header", size));
    }
    const std::uint64_t n = load<std::uint64_t>(map.data());
    if (n > size - 8) {
        throw data_error(
            map.path(), "",
            fmt::format("header length {} runs past the end of the file ({} bytes)", n, size));
    }
    if (n > kMaxHeader) {
        throw data_error(map.path(), "",
                         fmt::format("header length {} exceeds the 100 MB limit", n));
    }
    return n;
}

// The n header bytes as a JSON object. Duplicate names are an error, not "last one wins": the
// parser callback tracks the root object's keys.
Json parse_header(const char* text, std::uint64_t n, const std::string& path) {
    if (n == 0 || text[0] != '{') throw data_error(path, "", "header is not a JSON object");
    std::set<std::string> seen;
    std::string duplicate;
    const Json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t event,
                                                 Json& parsed) {
        if (event == nlohmann::json::parse_event_t::key && depth == 1 &&
            !seen.insert(parsed.get<std::string>()).second && duplicate.empty()) {
            duplicate = parsed.get<std::string>();
        }
        return true;
    };
    Json header;
    try {
        header = Json::parse(text, text + n, on_event);
    } catch (const nlohmann::json::exception& e) {
        std::string what = e.what();
        const auto bracket = what.find("] ");
        if (bracket != std::string::npos) what = what.substr(bracket + 2);
        throw data_error(path, "", "header is not valid JSON: " + what);
    }
    if (!duplicate.empty())
        throw data_error(path, duplicate, "tensor name appears twice in the header");
    if (!header.is_object()) throw data_error(path, "", "header is not a JSON object");
    return header;
}

// "__metadata__": a map of strings.
std::map<std::string, std::string> parse_metadata(const Json& value, const std::string& path) {
    if (!value.is_object()) throw data_error(path, "__metadata__", "expected a string map");
    std::map<std::string, std::string> metadata;
    for (const auto& m : value.items()) {
        if (!m.value().is_string()) {
            throw data_error(path, "__metadata__", "value of '" + m.key() + "' is not a string");
        }
        metadata[m.key()] = m.value().get<std::string>();
    }
    return metadata;
}

// Tensors sorted by data offsets must tile the data section: each starts where the previous
// ended, and the last ends at its end.
void check_tiling(const std::vector<SafetensorsTensor>& tensors, std::uint64_t data_size,
                  const std::string& path) {
    std::uint64_t cursor = 0;
    for (const SafetensorsTensor& t : tensors) {
        if (t.begin != cursor) {
            throw data_error(path, t.name,
                             t.begin < cursor
                                 ? fmt::format("data_offsets [{}, {}] overlap the previous tensor "
                                               "(which ends at {})",
                                               t.begin, t.end, cursor)
                                 : fmt::format("data_offsets [{}, {}] leave a gap after {}",
                                               t.begin, t.end, cursor));
        }
        if (t.end > data_size) {
            throw data_error(path, t.name,
                             fmt::format("data_offsets [{}, {}] run past the data section "
                                         "({} bytes)",
                                         t.begin, t.end, data_size));
        }
        cursor = t.end;
    }
    if (cursor != data_size) {
        throw data_error(path, "",
                         fmt::format("tensors cover {} of the {} data bytes", cursor, data_size));
    }
}

}  // namespace

std::size_t safetensors_dtype_size(const std::string& dtype) {
    static const std::map<std::string, std::size_t> sizes = {
        {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
        {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
        {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
    const auto it = sizes.find(dtype);
    return it == sizes.end() ? 0 : it->second;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
    SafetensorsFile f(MappedFile::open(path));
    f.header_size_ = read_header_length(f.map_);
    const Json header =
        parse_header(reinterpret_cast<const char*>(f.map_.data() + 8), f.header_size_, path);
    for (const auto& item : header.items()) {
        if (item.key() == "__metadata__") {
            f.metadata_ = parse_metadata(item.value(), path);
        } else {
            f.tensors_.push_back(parse_entry(item.key(), item.value(), path));
        }
    }
    std::stable_sort(f.tensors_.begin(), f.tensors_.end(),
                     [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
                         return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                     });
    check_tiling(f.tensors_, f.map_.size() - f.data_start(), path);
    for (std::size_t i = 0; i < f.tensors_.size(); ++i) f.by_name_[f.tensors_[i].name] = i;
    return f;
}

const std::string& SafetensorsFile::path() const {
    return map_.path();
}
const std::vector<SafetensorsTensor>& SafetensorsFile::tensors() const {
    return tensors_;
}
const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
    return metadata_;
}
std::uint64_t SafetensorsFile::header_size() const {
    return header_size_;
}
std::uint64_t SafetensorsFile::file_size() const {
    return map_.size();
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const SafetensorsTensor& SafetensorsFile::at(const std::string& name) const {
    const SafetensorsTensor* t = find(name);
    if (!t) throw data_error(path(), name, "no such tensor");
    return *t;
}

const std::uint8_t* SafetensorsFile::bytes(const SafetensorsTensor& t) const {
    return map_.data() + data_start() + t.begin;
}

std::uint64_t SafetensorsFile::file_offset(const SafetensorsTensor& t) const {
    return data_start() + t.begin;
}

namespace {

template <class Out>
Tensor<Out> convert(const SafetensorsFile& file, const std::string& name) {
    const SafetensorsTensor& t = file.at(name);
    Tensor<Out> out(t.shape);
    const std::uint8_t* p = file.bytes(t);
    const std::size_t n = out.size();
    const auto fill = [&](auto decode, std::size_t width) {
        for (std::size_t i = 0; i < n; ++i) out.data[i] = static_cast<Out>(decode(p + i * width));
    };
    const std::string& d = t.dtype;
    if (d == "F32")
        fill([](const std::uint8_t* q) { return load<float>(q); }, 4);
    else if (d == "F64")
        fill([](const std::uint8_t* q) { return load<double>(q); }, 8);
    else if (d == "F16")
        fill([](const std::uint8_t* q) { return half_to_float(load<std::uint16_t>(q)); }, 2);
    else if (d == "BF16")
        fill([](const std::uint8_t* q) { return bf16_to_float(load<std::uint16_t>(q)); }, 2);
    else if (d == "I64")
        fill([](const std::uint8_t* q) { return static_cast<double>(load<std::int64_t>(q)); }, 8);
    else if (d == "U64")
        fill([](const std::uint8_t* q) { return static_cast<double>(load<std::uint64_t>(q)); }, 8);
    else if (d == "I32")
        fill([](const std::uint8_t* q) { return static_cast<double>(load<std::int32_t>(q)); }, 4);
    else if (d == "U32")
        fill([](const std::uint8_t* q) { return static_cast<double>(load<std::uint32_t>(q)); }, 4);
    else if (d == "I16")
        fill([](const std::uint8_t* q) { return static_cast<double>(load<std::int16_t>(q)); }, 2);
    else if (d == "U16")
        fill([](const std::uint8_t* q) { return static_cast<double>(load<std::uint16_t>(q)); }, 2);
    else if (d == "I8")
        fill([](const std::uint8_t* q) { return static_cast<double>(load<std::int8_t>(q)); }, 1);
    else if (d == "U8" || d == "BOOL")
        fill([](const std::uint8_t* q) { return static_cast<double>(*q); }, 1);
    else
        throw data_error(file.path(), name, "cannot convert dtype " + d + " to floating point");
    return out;
}

}  // namespace

Tensor<float> SafetensorsFile::read_float(const std::string& name) const {
    return convert<float>(*this, name);
}
Tensor<double> SafetensorsFile::read_double(const std::string& name) const {
    return convert<double>(*this, name);
}

std::string safetensors_header(const std::vector<SafetensorsSpec>& specs,
                               const std::map<std::string, std::string>& metadata) {
    Json header = Json::object();
    Json meta = Json::object();
    meta["format"] = "pt";
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
    std::uint64_t offset = 0;
    std::set<std::string> names;
    for (const SafetensorsSpec& s : specs) {
        const std::size_t element = safetensors_dtype_size(s.dtype);
        if (element == 0)
            throw data_error("", s.name, "unknown safetensors dtype '" + s.dtype + "'");
        if (s.name == "__metadata__" || !names.insert(s.name).second) {
            throw data_error("", s.name, "tensor name used twice or reserved");
        }
        const std::uint64_t bytes = checked_bytes(s.shape, element, "", s.name);
        header[s.name] = {
            {"dtype", s.dtype}, {"shape", s.shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    return text;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<SafetensorsSpec> specs,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)) {
    const std::string header = safetensors_header(specs, metadata);
    for (const SafetensorsSpec& s : specs) {
        expected_ += checked_bytes(s.shape, safetensors_dtype_size(s.dtype), path_, s.name);
    }
    file_ = open_for_writing(path_);
    if (!file_) throw data_error(path_, "", std::string("cannot write: ") + std::strerror(errno));
    const std::uint64_t n = header.size();
    unsigned char length[8];
    std::memcpy(length, &n, 8);
    if (std::fwrite(length, 1, 8, file_) != 8 ||
        std::fwrite(header.data(), 1, header.size(), file_) != header.size()) {
        throw data_error(path_, "", "write failed (disk full?)");
    }
}

SafetensorsWriter::~SafetensorsWriter() {
    if (file_) std::fclose(file_);
}

void SafetensorsWriter::append(const void* data, std::size_t size) {
    if (!file_) throw data_error(path_, "", "append after finish");
    if (written_ + size > expected_) {
        throw data_error(path_, "",
                         fmt::format("{} tensor bytes given, the header announced {}",
                                     written_ + size, expected_));
    }
    if (size > 0 && std::fwrite(data, 1, size, file_) != size) {
        throw data_error(path_, "", "write failed (disk full?)");
    }
    written_ += size;
}

void SafetensorsWriter::append_copy(int source_fd, std::uint64_t offset,
                                    const unsigned char* mapped, std::size_t size) {
    if (!file_) throw data_error(path_, "", "append after finish");
    if (written_ + size > expected_) {
        throw data_error(path_, "",
                         fmt::format("{} tensor bytes given, the header announced {}",
                                     written_ + size, expected_));
    }
    const bool positioned = copy_region(
        file_, source_fd, offset, mapped, size,
        [&](const unsigned char* p, std::size_t n) { append(p, n); },
        [&](std::size_t n) { written_ += n; });
    if (!positioned) throw data_error(path_, "", "write failed (cannot seek the output)");
}

void SafetensorsWriter::finish() {
    if (written_ != expected_) {
        throw data_error(
            path_, "", fmt::format("only {} of {} tensor bytes were written", written_, expected_));
    }
    std::FILE* f = std::exchange(file_, nullptr);
    if (std::fclose(f) != 0) throw data_error(path_, "", "write failed (disk full?)");
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsSpec>& specs,
                       const std::vector<const void*>& data, bool force,
                       const std::vector<std::string>& inputs) {
    if (data.size() != specs.size())
        throw data_error(path, "", "one data pointer per tensor expected");
    check_output_path(path, force, inputs);
    TempOutput temp(make_temp_beside(path));
    {
        SafetensorsWriter writer(temp.path(), specs);
        for (std::size_t i = 0; i < specs.size(); ++i) {
            writer.append(data[i], static_cast<std::size_t>(checked_bytes(
                                       specs[i].shape, safetensors_dtype_size(specs[i].dtype), path,
                                       specs[i].name)));
        }
        writer.finish();
    }
    temp.commit_to(path);
}

SafetensorsIndex read_safetensors_index(const std::string& path) {
    const Json json = read_json_file(path);
    SafetensorsIndex index;
    index.path = path;
    if (!json.is_object() || !json.contains("weight_map") || !json.at("weight_map").is_object()) {
        throw data_error(path, "weight_map",
                         "missing (expected an object mapping tensor names to shard files)");
    }
    std::set<std::string> shards;
    for (const auto& item : json.at("weight_map").items()) {
        if (!item.value().is_string()) {
            throw data_error(path, "weight_map",
                             "shard of '" + item.key() + "' is not a file name");
        }
        const std::string shard = item.value().get<std::string>();
        if (shard.empty() || shard.find('/') != std::string::npos || shard == "." ||
            shard == "..") {
            throw data_error(
                path, "weight_map",
                "shard '" + shard + "' is not a plain file name in the index's directory");
        }
        index.weight_map[item.key()] = shard;
        if (shards.insert(shard).second) index.shards.push_back(shard);
    }
    if (index.weight_map.empty()) throw data_error(path, "weight_map", "is empty");
    return index;
}

}  // namespace ropekit
