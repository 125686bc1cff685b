// The inverse of DecodeSampleBatch for self-describing batches: the serialized v1::SampleBatch
// of a DecodedBatch's samples (export id, metric, the tag fields as they are, time, value), so
// that a batch built from another input (the InfluxDB line protocol) can be written to the
// write-ahead log as StreamSamples batches are. Declarations and compact columns are not
// encoded (the line protocol has none).
#ifndef RWEXPORT_LIB_INGEST_BATCH_ENCODER_H_
#define RWEXPORT_LIB_INGEST_BATCH_ENCODER_H_

#include <string>

#include "lib/ingest/batch_decoder.h"

namespace rwexport {

// Appends the encoding to `out`; DecodeSampleBatch of it gives back the same samples.
void EncodeSelfDescribingBatch(const DecodedBatch& batch, std::string* out);

}  // namespace rwexport

#endif  // RWEXPORT_LIB_INGEST_BATCH_ENCODER_H_
