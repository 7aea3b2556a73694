# Writes reference-written.safetensors with Hugging Face's own safetensors library (the Rust
# implementation behind the Python package), so SafetensorsReferenceFileTest can check that our
# reader agrees with a writer no one here wrote. Run once by hand; the output is committed.
#   python3 make_reference_fixture.py      (needs: pip install safetensors==0.8.0; no numpy)
import ctypes
import struct

import safetensors

specs = {}
keep = []


def add(name, dtype, shape, data):
    buf = ctypes.create_string_buffer(data, len(data))
    keep.append(buf)
    specs[name] = safetensors.TensorSpec(dtype=dtype, shape=shape,
                                         data_ptr=ctypes.addressof(buf), data_len=len(data))


add("f32", "float32", [2, 2], struct.pack("<4f", 1.0, 2.0, 3.0, -4.5))
add("f16", "float16", [3], struct.pack("<3H", 0x3C00, 0xC100, 0x7BFF))  # 1.0, -2.5, 65504
add("bf16", "bfloat16", [1], struct.pack("<H", 0x4049))  # 3.140625
add("f64", "float64", [], struct.pack("<d", 0.1))
add("i32", "int32", [2], struct.pack("<2i", -7, 2147483647))
add("u8", "uint8", [2], bytes([255, 0]))
add("empty", "float32", [0, 3], b"")

out = safetensors.serialize(specs, {"format": "pt", "writer": "safetensors 0.8.0"})
with open("reference-written.safetensors", "wb") as f:
    f.write(out)
print(len(out), "bytes")
