// Registers every op module (each defines its ops' inference and gradient rules).
import './elementwise';
import './tensor';
import './optimizers';
