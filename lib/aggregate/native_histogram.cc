#include "lib/aggregate/native_histogram.h"

#include <array>
#include <cmath>
#include <cstring>
#include <utility>

namespace rwexport {
namespace {

// 2^(j/128 - 1) for j = 0..127, correctly rounded: the bucket boundaries of schema 7 within
// one octave, scaled into [0.5, 1). Schema s < 7 uses every 2^(7-s)-th entry. Generated with
// Python's decimal module at 60 digits: float((Decimal(j) / 128 * Decimal(2).ln()).exp() / 2).
constexpr std::array<double, 128> kBounds = {
    0x1.0000000000000p-1, 0x1.0163da9fb3335p-1, 0x1.02c9a3e778061p-1, 0x1.04315e86e7f85p-1,
    0x1.059b0d3158574p-1, 0x1.0706b29ddf6dep-1, 0x1.0874518759bc8p-1, 0x1.09e3ecac6f383p-1,
    0x1.0b5586cf9890fp-1, 0x1.0cc922b7247f7p-1, 0x1.0e3ec32d3d1a2p-1, 0x1.0fb66affed31bp-1,
    0x1.11301d0125b51p-1, 0x1.12abdc06c31ccp-1, 0x1.1429aaea92de0p-1, 0x1.15a98c8a58e51p-1,
    0x1.172b83c7d517bp-1, 0x1.18af9388c8deap-1, 0x1.1a35beb6fcb75p-1, 0x1.1bbe084045cd4p-1,
    0x1.1d4873168b9aap-1, 0x1.1ed5022fcd91dp-1, 0x1.2063b88628cd6p-1, 0x1.21f49917ddc96p-1,
    0x1.2387a6e756238p-1, 0x1.251ce4fb2a63fp-1, 0x1.26b4565e27cddp-1, 0x1.284dfe1f56381p-1,
    0x1.29e9df51fdee1p-1, 0x1.2b87fd0dad990p-1, 0x1.2d285a6e4030bp-1, 0x1.2ecafa93e2f56p-1,
    0x1.306fe0a31b715p-1, 0x1.32170fc4cd831p-1, 0x1.33c08b26416ffp-1, 0x1.356c55f929ff1p-1,
    0x1.371a7373aa9cbp-1, 0x1.38cae6d05d866p-1, 0x1.3a7db34e59ff7p-1, 0x1.3c32dc313a8e5p-1,
    0x1.3dea64c123422p-1, 0x1.3fa4504ac801cp-1, 0x1.4160a21f72e2ap-1, 0x1.431f5d950a897p-1,
    0x1.44e086061892dp-1, 0x1.46a41ed1d0057p-1, 0x1.486a2b5c13cd0p-1, 0x1.4a32af0d7d3dep-1,
    0x1.4bfdad5362a27p-1, 0x1.4dcb299fddd0dp-1, 0x1.4f9b2769d2ca7p-1, 0x1.516daa2cf6642p-1,
    0x1.5342b569d4f82p-1, 0x1.551a4ca5d920fp-1, 0x1.56f4736b527dap-1, 0x1.58d12d497c7fdp-1,
    0x1.5ab07dd485429p-1, 0x1.5c9268a5946b7p-1, 0x1.5e76f15ad2148p-1, 0x1.605e1b976dc09p-1,
    0x1.6247eb03a5585p-1, 0x1.6434634ccc320p-1, 0x1.6623882552225p-1, 0x1.68155d44ca973p-1,
    0x1.6a09e667f3bcdp-1, 0x1.6c012750bdabfp-1, 0x1.6dfb23c651a2fp-1, 0x1.6ff7df9519484p-1,
    0x1.71f75e8ec5f74p-1, 0x1.73f9a48a58174p-1, 0x1.75feb564267c9p-1, 0x1.780694fde5d3fp-1,
    0x1.7a11473eb0187p-1, 0x1.7c1ed0130c132p-1, 0x1.7e2f336cf4e62p-1, 0x1.80427543e1a12p-1,
    0x1.82589994cce13p-1, 0x1.8471a4623c7adp-1, 0x1.868d99b4492edp-1, 0x1.88ac7d98a6699p-1,
    0x1.8ace5422aa0dbp-1, 0x1.8cf3216b5448cp-1, 0x1.8f1ae99157736p-1, 0x1.9145b0b91ffc6p-1,
    0x1.93737b0cdc5e5p-1, 0x1.95a44cbc8520fp-1, 0x1.97d829fde4e50p-1, 0x1.9a0f170ca07bap-1,
    0x1.9c49182a3f090p-1, 0x1.9e86319e32323p-1, 0x1.a0c667b5de565p-1, 0x1.a309bec4a2d33p-1,
    0x1.a5503b23e255dp-1, 0x1.a799e1330b358p-1, 0x1.a9e6b5579fdbfp-1, 0x1.ac36bbfd3f37ap-1,
    0x1.ae89f995ad3adp-1, 0x1.b0e07298db666p-1, 0x1.b33a2b84f15fbp-1, 0x1.b59728de5593ap-1,
    0x1.b7f76f2fb5e47p-1, 0x1.ba5b030a1064ap-1, 0x1.bcc1e904bc1d2p-1, 0x1.bf2c25bd71e09p-1,
    0x1.c199bdd85529cp-1, 0x1.c40ab5fffd07ap-1, 0x1.c67f12e57d14bp-1, 0x1.c8f6d9406e7b5p-1,
    0x1.cb720dcef9069p-1, 0x1.cdf0b555dc3fap-1, 0x1.d072d4a07897cp-1, 0x1.d2f87080d89f2p-1,
    0x1.d5818dcfba487p-1, 0x1.d80e316c98398p-1, 0x1.da9e603db3285p-1, 0x1.dd321f301b460p-1,
    0x1.dfc97337b9b5fp-1, 0x1.e264614f5a129p-1, 0x1.e502ee78b3ff6p-1, 0x1.e7a51fbc74c83p-1,
    0x1.ea4afa2a490dap-1, 0x1.ecf482d8e67f1p-1, 0x1.efa1bee615a27p-1, 0x1.f252b376bba97p-1,
    0x1.f50765b6e4540p-1, 0x1.f7bfdad9cbe14p-1, 0x1.fa7c1819e90d8p-1, 0x1.fd3c22b8f71f1p-1,
};

// Each of the 256 slices [0.5 + k/512, 0.5 + (k+1)/512) of [0.5, 1) holds at most one entry
// of kBounds (neighbouring entries are at least 0.5 * (2^(1/128) - 1) > 1/512 apart), so the
// first entry >= x is kSlice[k] or the one after it. kSlice[k] is the first j with
// kBounds[j] >= 0.5 + k/512 (128 if there is none).
constexpr std::array<uint8_t, 256> MakeSliceTable() {
  std::array<uint8_t, 256> table{};
  int j = 0;
  for (int k = 0; k < 256; ++k) {
    const double start = 0.5 + k / 512.0;
    while (j < 128 && kBounds[j] < start) ++j;
    table[k] = static_cast<uint8_t>(j);
  }
  return table;
}
constexpr std::array<uint8_t, 256> kSlice = MakeSliceTable();

constexpr uint64_t kMantissaMask = (uint64_t{1} << 52) - 1;

// ceil(i / 2^by) for by >= 0 (division truncates towards zero, which is the ceiling for
// negative i).
int64_t CeilShift(int64_t i, int by) {
  if (by == 0) return i;
  const int64_t d = int64_t{1} << by;
  int64_t q = i / d;
  if (i % d > 0) ++q;
  return q;
}

// The schema-7 bucket index of a finite magnitude > 0.
int64_t Index7(double magnitude) {
  uint64_t bits;
  std::memcpy(&bits, &magnitude, sizeof(bits));
  const int biased_exponent = static_cast<int>((bits >> 52) & 0x7ff);
  if (biased_exponent == 0) {  // subnormal: scale into the normal range
    return Index7(magnitude * 0x1p64) - 64 * 128;
  }
  // magnitude = frac * 2^exponent with frac in [0.5, 1) (as frexp).
  const int exponent = biased_exponent - 1022;
  const uint64_t frac_bits = (bits & kMantissaMask) | (uint64_t{1022} << 52);
  double frac;
  std::memcpy(&frac, &frac_bits, sizeof(frac));
  int j = kSlice[(bits >> 44) & 0xff];
  if (j < 128 && kBounds[j] < frac) ++j;
  return j + int64_t{exponent - 1} * 128;
}

}  // namespace

NativeHistogram::NativeHistogram(int schema)
    : schema_(std::min(std::max(schema, kMinSchema), kMaxSchema)) {}

int NativeHistogram::BucketIndex(double magnitude, int schema) {
  return static_cast<int>(CeilShift(Index7(magnitude), kMaxSchema - schema));
}

double NativeHistogram::UpperBound(int index, int schema) {
  const int64_t i7 = int64_t{index} * (int64_t{1} << (kMaxSchema - schema));
  int64_t octave = i7 / 128;
  int64_t j = i7 % 128;
  if (j < 0) {
    j += 128;
    --octave;
  }
  return std::ldexp(kBounds[j], static_cast<int>(octave + 1));
}

double NativeHistogram::RelativeErrorBound(int schema) {
  return std::expm1(std::ldexp(std::log(2.0), -schema));
}

void NativeHistogram::Add(double value) {
  if (!std::isfinite(value)) return;
  ++count_;
  sum_ += value;
  const double magnitude = std::fabs(value);
  if (magnitude <= kZeroThreshold) {
    ++zero_count_;
    return;
  }
  AddToStore(value > 0, BucketIndex(magnitude, schema_), 1);
}

void NativeHistogram::Merge(const NativeHistogram& other) {
  if (other.schema_ < schema_) ReduceSchema(schema_ - other.schema_);
  count_ += other.count_;
  sum_ += other.sum_;
  zero_count_ += other.zero_count_;
  // AddToStore may lower schema_ as it goes: convert each index at the current schema.
  for (const auto& [index, n] : other.positive_.Buckets()) {
    AddToStore(true, CeilShift(index, other.schema_ - schema_), n);
  }
  for (const auto& [index, n] : other.negative_.Buckets()) {
    AddToStore(false, CeilShift(index, other.schema_ - schema_), n);
  }
}

void NativeHistogram::AddToStore(bool positive, int64_t index, uint64_t n) {
  Store& store = positive ? positive_ : negative_;
  // Terminates: at schema 0 every finite magnitude lies within 2100 buckets.
  while (!store.Fits(index)) {
    ReduceSchema(1);
    index = CeilShift(index, 1);
  }
  store.Add(index, n);
}

void NativeHistogram::ReduceSchema(int by) {
  schema_ -= by;
  positive_.Reduce(by);
  negative_.Reduce(by);
}

HistogramPoint NativeHistogram::ToPoint(int64_t timestamp_ms,
                                        HistogramPoint::ResetHint reset_hint) const {
  HistogramPoint point;
  point.timestamp_ms = timestamp_ms;
  point.count = count_;
  point.sum = sum_;
  point.schema = schema_;
  point.zero_threshold = kZeroThreshold;
  point.zero_count = zero_count_;
  point.reset_hint = reset_hint;
  negative_.Encode(&point.negative_spans, &point.negative_deltas);
  positive_.Encode(&point.positive_spans, &point.positive_deltas);
  return point;
}

NativeHistogram::State NativeHistogram::SaveState() const {
  return State{schema_, count_, zero_count_, sum_, positive_.Buckets(), negative_.Buckets()};
}

bool NativeHistogram::FromState(const State& state, NativeHistogram* out) {
  if (state.schema < kMinSchema || state.schema > kMaxSchema) return false;
  NativeHistogram h(state.schema);
  uint64_t total = state.zero_count;
  for (const bool positive : {true, false}) {
    Store& store = positive ? h.positive_ : h.negative_;
    for (const auto& [index, n] : positive ? state.positive : state.negative) {
      if (n == 0 || !store.Fits(index)) return false;
      store.Add(index, n);
      total += n;
    }
  }
  if (total != state.count) return false;
  h.count_ = state.count;
  h.zero_count_ = state.zero_count;
  h.sum_ = state.sum;
  *out = std::move(h);
  return true;
}

size_t NativeHistogram::MemoryBytes() const {
  return sizeof(NativeHistogram) + positive_.capacity_bytes() + negative_.capacity_bytes();
}

size_t NativeHistogram::MaxMemoryBytes() {
  return sizeof(NativeHistogram) + 2 * size_t{kMaxBucketsPerSign} * sizeof(uint64_t);
}

// ---------------------------------------------------------------------------------------------

void NativeHistogram::Store::Grow(int64_t index) {
  const bool was_empty = total_ == 0;
  const int64_t new_lo = was_empty ? index : std::min(lo_, index);
  const int64_t new_hi = was_empty ? index : std::max(hi_, index);
  const int64_t span = new_hi - new_lo + 1;
  const int64_t room =
      std::min<int64_t>(kMaxBucketsPerSign - span, std::max<int64_t>(span / 2, 16));
  int64_t new_base = new_lo;
  if (was_empty) {
    new_base = index - room / 2;
  } else if (index < lo_) {
    new_base = new_lo - room;
  }
  std::vector<uint64_t> counts(static_cast<size_t>(span + room));
  if (!was_empty) {
    for (int64_t i = lo_; i <= hi_; ++i) counts[i - new_base] = counts_[i - base_];
  }
  counts_.swap(counts);
  base_ = new_base;
}

void NativeHistogram::Store::Reduce(int by) {
  if (total_ == 0 || by <= 0) return;
  const int64_t new_lo = CeilShift(lo_, by);
  const int64_t new_hi = CeilShift(hi_, by);
  std::vector<uint64_t> counts(static_cast<size_t>(new_hi - new_lo + 1));
  for (int64_t i = lo_; i <= hi_; ++i) counts[CeilShift(i, by) - new_lo] += counts_[i - base_];
  counts_.swap(counts);
  base_ = new_lo;
  lo_ = new_lo;
  hi_ = new_hi;
}

std::vector<std::pair<int, uint64_t>> NativeHistogram::Store::Buckets() const {
  std::vector<std::pair<int, uint64_t>> out;
  if (total_ == 0) return out;
  for (int64_t i = lo_; i <= hi_; ++i) {
    const uint64_t n = counts_[i - base_];
    if (n != 0) out.emplace_back(static_cast<int>(i), n);
  }
  return out;
}

void NativeHistogram::Store::Encode(std::vector<HistogramSpan>* spans,
                                    std::vector<int64_t>* deltas) const {
  if (total_ == 0) return;
  // A gap of up to this many empty buckets is filled with zero counts rather than starting a
  // new span (a span costs two varints, a zero delta one byte).
  constexpr int64_t kMaxFilledGap = 2;
  int64_t previous_index = 0;
  int64_t previous_count = 0;
  for (int64_t i = lo_; i <= hi_; ++i) {
    const int64_t n = static_cast<int64_t>(counts_[i - base_]);
    if (n == 0) continue;
    if (spans->empty()) {
      spans->push_back({static_cast<int32_t>(i), 0});
    } else {
      const int64_t gap = i - previous_index - 1;
      if (gap > kMaxFilledGap) {
        spans->push_back({static_cast<int32_t>(gap), 0});
      } else {
        for (int64_t g = 0; g < gap; ++g) {
          ++spans->back().length;
          deltas->push_back(-previous_count);
          previous_count = 0;
        }
      }
    }
    ++spans->back().length;
    deltas->push_back(n - previous_count);
    previous_count = n;
    previous_index = i;
  }
}

}  // namespace rwexport
