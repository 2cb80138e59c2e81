#include "ropekit/formats/ggml_types.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "ropekit/core/dtype.hpp"
#include "ropekit/core/error.hpp"

namespace ropekit {

namespace {

constexpr std::uint64_t kSuperBlock = 256;  // QK_K

float f16_at(const std::uint8_t* p) {
    std::uint16_t h;
    std::memcpy(&h, p, sizeof h);
    return half_to_float(h);
}

void q8_0_block(const std::uint8_t* b, float* y) {
    const float d = f16_at(b);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(b[2 + j])) * d;
}

void q4_0_block(const std::uint8_t* b, float* y) {
    const float d = f16_at(b);
    const std::uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
        y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
}

// The 6-bit scale and min of sub-block j (0 … 7) from Q4_K/Q5_K's 12 packed bytes: sub-blocks
// 0-3 sit in the low 6 bits of bytes j and j + 4; 4-7 keep their low 4 bits in the nibbles of
// byte j + 4 and their top 2 bits in the top bits of bytes j − 4 (scale) and j (min).
void scale_min_k4(int j, const std::uint8_t* q, float& scale, float& min) {
    const int sc = j < 4 ? q[j] & 63 : (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    const int m = j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    scale = static_cast<float>(sc);
    min = static_cast<float>(m);
}

// Q4_K (fifth_bits == nullptr) and Q5_K: x = (d·scale)·q − (dmin·min) per sub-block of 32.
void k_block(const std::uint8_t* b, const std::uint8_t* fifth_bits, const std::uint8_t* qs,
             float* y) {
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const std::uint8_t* scales = b + 4;
    for (int c = 0; c < 4; ++c) {  // chunks of 64 values: sub-blocks 2c (low nibbles), 2c + 1
        for (int half = 0; half < 2; ++half) {
            const int sub = 2 * c + half;
            float sc, m;
            scale_min_k4(sub, scales, sc, m);
            const float step = d * sc, offset = dmin * m;
            for (int l = 0; l < 32; ++l) {
                int q = half == 0 ? qs[32 * c + l] & 0xF : qs[32 * c + l] >> 4;
                if (fifth_bits && ((fifth_bits[l] >> sub) & 1)) q += 16;
                y[32 * sub + l] = step * static_cast<float>(q) - offset;
            }
        }
    }
}

void q4_k_block(const std::uint8_t* b, float* y) {
    k_block(b, nullptr, b + 16, y);
}

void q5_k_block(const std::uint8_t* b, float* y) {
    k_block(b, b + 16, b + 48, y);
}

// Value 128n + 32i + l takes its low 4 bits from byte 64n + 32(i mod 2) + l (low nibble for
// i < 2, high for i ≥ 2), its high 2 bits from bits 2i of byte 128 + 32n + l, and the scale of
// its sub-block of 16.
void q6_k_block(const std::uint8_t* b, float* y) {
    const std::uint8_t* ql = b;
    const std::uint8_t* qh = b + 128;
    const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
    const float d = f16_at(b + 208);
    for (int n = 0; n < 2; ++n) {
        for (int i = 0; i < 4; ++i) {
            for (int l = 0; l < 32; ++l) {
                const int low = (ql[64 * n + 32 * (i % 2) + l] >> (i < 2 ? 0 : 4)) & 0xF;
                const int high = (qh[32 * n + l] >> (2 * i)) & 3;
                const int index = 128 * n + 32 * i + l;
                y[index] = d * static_cast<float>(sc[index / 16]) *
                           static_cast<float>((low | (high << 4)) - 32);
            }
        }
    }
}

struct BlockType {
    GgmlType type;
    std::uint64_t values;
    void (*convert)(const std::uint8_t*, float*);
};

constexpr BlockType kBlockTypes[] = {{GgmlType::q8_0, 32, q8_0_block},
                                     {GgmlType::q4_0, 32, q4_0_block},
                                     {GgmlType::q4_k, kSuperBlock, q4_k_block},
                                     {GgmlType::q5_k, kSuperBlock, q5_k_block},
                                     {GgmlType::q6_k, kSuperBlock, q6_k_block}};

const BlockType* block_type(std::uint32_t type) {
    for (const BlockType& b : kBlockTypes) {
        if (static_cast<std::uint32_t>(b.type) == type) return &b;
    }
    return nullptr;
}

std::uint64_t values_per_block(std::uint32_t type) {
    const BlockType* b = block_type(type);
    return b ? b->values : 1;
}

// 16-bit floats through an aligned buffer: the data may sit at any byte offset.
template <class Convert>
void convert_16bit(const std::uint8_t* src, std::uint64_t count, float* out, Convert convert) {
    std::uint16_t buffer[1024];
    for (std::uint64_t done = 0; done < count;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(count - done, 1024));
        std::memcpy(buffer, src + 2 * done, 2 * n);
        convert(buffer, out + done, n);
        done += n;
    }
}

// bfloat16 is the top half of a float32: widened straight from the bytes, any alignment (the
// loop vectorises; the AVX2 clone is picked at load time where the CPU has it).
__attribute__((target_clones("avx2", "default"))) void bf16_to_floats(const std::uint8_t* src,
                                                                      std::uint64_t count,
                                                                      float* out) {
    for (std::uint64_t i = 0; i < count; ++i) {
        std::uint16_t half;
        std::memcpy(&half, src + 2 * i, sizeof half);
        const std::uint32_t bits = static_cast<std::uint32_t>(half) << 16;
        std::memcpy(out + i, &bits, sizeof bits);
    }
}

}  // namespace

bool can_dequantize(std::uint32_t type) {
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::f32:
        case GgmlType::f16:
        case GgmlType::bf16:
        case GgmlType::f64:
            return true;
        default:
            return block_type(type) != nullptr;
    }
}

void dequantize(std::uint32_t type, const std::uint8_t* src, std::uint64_t count, float* out) {
    if (count == 0) return;  // an empty tensor: out may be null, and memcpy must not see it
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::f32:
            std::memcpy(out, src, 4 * count);
            return;
        case GgmlType::f16:
            return convert_16bit(src, count, out, halves_to_floats);
        case GgmlType::bf16:
            return bf16_to_floats(src, count, out);
        case GgmlType::f64:
            for (std::uint64_t i = 0; i < count; ++i) {
                double v;
                std::memcpy(&v, src + 8 * i, sizeof v);
                out[i] = static_cast<float>(v);
            }
            return;
        default:
            break;
    }
    const BlockType* b = block_type(type);
    if (!b) throw std::invalid_argument("dequantize: " + ggml_type_name(type) + " not supported");
    if (count % b->values != 0) throw std::invalid_argument("dequantize: partial block");
    const std::uint64_t block_bytes = *ggml_type_bytes(type, b->values);
    for (std::uint64_t i = 0; i < count / b->values; ++i) {
        b->convert(src + i * block_bytes, out + i * b->values);
    }
}

std::uint64_t gguf_row_count(const GgufTensorInfo& tensor) {
    std::uint64_t rows = 1;
    for (std::size_t d = 1; d < tensor.dims.size(); ++d) rows *= tensor.dims[d];
    return tensor.dims.empty() || tensor.dims[0] == 0 ? 0 : rows;
}

void require_dequantizable(const GgufFile& file, const GgufTensorInfo& tensor) {
    if (!can_dequantize(tensor.type)) {
        throw data_error(file.path(), tensor.name,
                         fmt::format("{} tensors cannot be converted to float (expected F32, "
                                     "F16, BF16, F64, Q8_0, Q4_0, Q4_K, Q5_K or Q6_K)",
                                     ggml_type_name(tensor.type)));
    }
    const std::uint64_t block = values_per_block(tensor.type);
    if (tensor.dims.empty() || tensor.dims[0] % block != 0) {
        throw data_error(file.path(), tensor.name,
                         fmt::format("rows of {} values are not whole {} blocks of {}",
                                     tensor.dims.empty() ? 0 : tensor.dims[0],
                                     ggml_type_name(tensor.type), block));
    }
}

void dequantize_rows(const GgufFile& file, const GgufTensorInfo& tensor, std::uint64_t first,
                     std::uint64_t count, float* out) {
    require_dequantizable(file, tensor);
    if (first > gguf_row_count(tensor) || count > gguf_row_count(tensor) - first) {
        throw std::out_of_range(fmt::format("{}: rows [{}, {}) of {}", tensor.name, first,
                                            first + count, gguf_row_count(tensor)));
    }
    const std::uint64_t row_bytes = *ggml_type_bytes(tensor.type, tensor.dims[0]);
    dequantize(tensor.type, file.bytes(tensor) + first * row_bytes, count * tensor.dims[0], out);
}

}  // namespace ropekit
