// Registers every op module (each defines its ops' inference and gradient rules).
import './elementwise';
import './tensor';
import './math';
import './reduce';
import './shape-ops';
import './nn';
import './loss';
import './optimizers';
import './attention';
