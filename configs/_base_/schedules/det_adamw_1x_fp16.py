# det_adamw_1x.py in fp16 mixed precision with dynamic loss scaling, as the FocalNet
# authors trained their Mask R-CNN, Cascade Mask R-CNN and ATSS models (apex O1 through
# DistOptimizerHook(use_fp16=True)). Where no CUDA, NPU or MLU device is present,
# tools/train.py trains in float32 with OptimWrapper and logs a warning.
_base_ = './det_adamw_1x.py'

optim_wrapper = dict(type='AmpOptimWrapper', dtype='float16', loss_scale='dynamic')
