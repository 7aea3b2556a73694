/**
 * Importers of pretrained ONNX models into peft4j's DL4J graphs: {@link org.peft4j.core.onnx.BertOnnxImport}
 * turns a BERT-family encoder (for example the sentence-transformers all-MiniLM-L6-v2 export) into
 * the graph of {@link org.peft4j.core.blocks.Transformers#encoder()} with every weight set.
 * The ONNX protobuf classes come with nd4j-api ({@code onnx.Onnx}); no ONNX runtime is needed.
 */
package org.peft4j.core.onnx;
