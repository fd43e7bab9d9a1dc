# det_adamw_1x.py in fp16 mixed precision with dynamic loss scaling, as the FocalNet
# authors trained their Mask R-CNN, Cascade Mask R-CNN and ATSS models (apex O1 through
# DistOptimizerHook(use_fp16=True)). mmfocal's MixedPrecisionOptimWrapper is mmengine's
# AmpOptimWrapper where a CUDA, NPU or MLU device is present, else float32 OptimWrapper with a
# warning in the log (whichever train.py builds it).
_base_ = './det_adamw_1x.py'

optim_wrapper = dict(type='MixedPrecisionOptimWrapper', dtype='float16', loss_scale='dynamic')
