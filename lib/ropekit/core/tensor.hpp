#pragma once
// A plain, owning, row-major N-d array. Nothing clever: shape + contiguous data.
#include <cstddef>
#include <numeric>
#include <string>
#include <vector>

namespace ropekit {

using Shape = std::vector<std::size_t>;

inline std::size_t element_count(const Shape& shape) {
    return std::accumulate(shape.begin(), shape.end(), std::size_t{1},
                           [](std::size_t a, std::size_t b) { return a * b; });
}

std::string shape_string(const Shape& shape);  // "[2, 3, 4]"

template <class T>
struct Tensor {
    Shape shape;
    std::vector<T> data;

    Tensor() = default;
    explicit Tensor(Shape s, T fill = T{})
        : shape(std::move(s)), data(element_count(shape), fill) {}

    std::size_t rank() const { return shape.size(); }
    std::size_t size() const { return data.size(); }
    T* ptr() { return data.data(); }
    const T* ptr() const { return data.data(); }

    // Row-major offset of a full index.
    std::size_t offset(std::initializer_list<std::size_t> index) const {
        std::size_t off = 0, axis = 0;
        for (std::size_t i : index) off = off * shape[axis++] + i;
        return off;
    }
    T& operator()(std::initializer_list<std::size_t> index) { return data[offset(index)]; }
    const T& operator()(std::initializer_list<std::size_t> index) const {
        return data[offset(index)];
    }
};

}  // namespace ropekit
