#pragma once
// Low-level HDF5 helpers behind h5io.hpp: handle ownership, element-type classification,
// attribute and dataset writing. Private to the hdf5 module: tools and other modules use h5io.hpp.
#include <hdf5.h>

#include <string>
#include <utility>
#include <vector>

#include "ropekit/core/dtype.hpp"
#include "ropekit/core/tensor.hpp"
#include "ropekit/hdf5/attr_value.hpp"

namespace ropekit {

// Owns one HDF5 identifier.
class Hid {
  public:
    Hid() = default;
    Hid(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
    Hid(Hid&& o) noexcept : id_(std::exchange(o.id_, -1)), close_(o.close_) {}
    Hid& operator=(Hid&& o) noexcept {
        reset();
        id_ = std::exchange(o.id_, -1);
        close_ = o.close_;
        return *this;
    }
    Hid(const Hid&) = delete;
    Hid& operator=(const Hid&) = delete;
    ~Hid() { reset(); }
    hid_t get() const { return id_; }
    explicit operator bool() const { return id_ >= 0; }

  private:
    void reset() {
        if (id_ >= 0 && close_) close_(id_);
        id_ = -1;
    }
    hid_t id_ = -1;
    herr_t (*close_)(hid_t) = nullptr;
};

template <class T>
hid_t native_type();
template <>
inline hid_t native_type<float>() {
    return H5T_NATIVE_FLOAT;
}
template <>
inline hid_t native_type<double>() {
    return H5T_NATIVE_DOUBLE;
}

Shape dataspace_shape(hid_t dataset, const std::string& file, const std::string& name);
// The element type of a floating-point dataset, or data_error("expected floating-point ...").
DType classify_float_type(hid_t dataset, const std::string& file, const std::string& name);
// A 16-bit integer dataset read as bf16 bits: marked dtype="bfloat16", or any with --bf16.
bool holds_bf16_bits(hid_t dataset);
std::string describe_type(hid_t type);  // "int32", "uint16", "float16", "string", ...
// Memory type to read a 16-bit dataset's raw bits in native byte order.
Hid raw16_memory_type(hid_t dataset, DType dtype);
// h5py's float16 layout.
Hid make_f16_type();

AttrValue read_attribute(hid_t attribute, const std::string& file, const std::string& where);
// `shape` (an array value's dataspace, e.g. {rows, cols}) defaults to one axis of its length.
void write_attribute(hid_t file, const std::string& file_name, const std::string& object,
                     const std::string& name, const AttrValue& value, const Shape& shape = {});

// A new dataset of `shape`: contiguous (mappable in place), f16 as h5py's float16, bf16 marked by
// a dtype attribute.
void create_output_dataset(hid_t file, const std::string& file_name, const std::string& dataset,
                           const Shape& shape, DType stored);
void write_float_slab(hid_t file, const std::string& file_name, const std::string& dataset,
                      const Shape& start, const Shape& count, const float* data);
void write_whole(hid_t file, const std::string& file_name, const std::string& dataset,
                 const Shape& shape, DType stored, const float* data);
void write_whole(hid_t file, const std::string& file_name, const std::string& dataset,
                 const Shape& shape, DType stored, const double* data);
void write_int64(hid_t file, const std::string& file_name, const std::string& dataset,
                 const Shape& shape, const std::int64_t* data);
// Dimension labels (H5DS) for each axis and a "units" attribute.
void label_dataset(hid_t file, const std::string& file_name, const std::string& dataset,
                   const std::vector<std::string>& axes, const std::string& units);

}  // namespace ropekit
