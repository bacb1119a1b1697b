"""TensorFlow Lite (.tflite) front end: a bounds-checked flatbuffer reader and schema enums."""
